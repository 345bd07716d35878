#!/usr/bin/env bash
# The quality-privacy curve of docs/privacy.md: fedrec-sim's differentially
# private pipeline on the full bundled log at epsilon 1, 2, 4, 8, 16 (delta
# 1e-6), the same pipeline without noise, and the non-private federated model
# (the simulator's default training over the plain sum), three seeds each; popularity
# and centralized ALS from the same runs. Writes OUT/curve.md (the table:
# mean and lowest-highest seed of HR@10 and NDCG@10) and OUT/privacy_curve.svg.
#   scripts/dp_curve.sh BUILD_DIR OUT [validation]
# With "validation" every run evaluates on the validation split (the last
# basket of each shopper's training rows: for tuning; the test rows are never
# read). A finished seed (its summary.json exists) is not run again, so an
# interrupted run resumes; DP_CURVE_SEEDS=1 (2, 3) runs one seed, so three
# invocations can share OUT in parallel. A DP run takes about a minute per
# release on two free cores (4,334 clients every release), plus the
# centralized ALS baseline.
#
# The settings per epsilon were chosen on the validation split (docs/privacy.md):
#   factors, releases, survivor floor, Gram weight g, the item step's eigenvalue
#   floor phi (--dp-gram-floor; row bound R = 3).
set -euo pipefail
build=$1 out=$2 split=${3:-lastbasket}
src=$(cd "$(dirname "$0")/.." && pwd)
sim=$build/sim/fedrec-sim
data=$src/data/online-retail/online_retail.csv.gz
seeds=${DP_CURVE_SEEDS:-1,2,3}
mkdir -p "$out"

# epsilon factors releases min-survivors gram-weight gram-floor
settings=(
    "8 32 2 0.9 0.3 0.07"
    "2 16 2 0.9 0.3 0.07"
    "16 64 2 0.9 0.3 0.07"
    "4 32 2 0.9 0.3 0.07"
    "1 8 2 0.9 0.3 0.07"
)
common=(--data "$data" --split "$split" --dropout 0 --dp-noise aggregate --dp-delta 1e-6
        --threads 2 --quiet)

run() { # name, then fedrec-sim run options
    local name=$1
    shift
    echo "== $name: $*" >&2
    local log=$out/$name.seeds-${seeds//,/-}.log # one per invocation: they may run in parallel
    "$sim" run "$@" --seeds "$seeds" --out "$out/$name" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
}

for s in "${settings[@]}"; do
    read -r eps k rel msurv g phi <<<"$s"
    run "dp-eps$eps" "${common[@]}" --dp-epsilon "$eps" --rounds "$rel" --factors "$k" \
        --dp-min-survivors "$msurv" --dp-gram-weight "$g" --dp-gram-floor "$phi"
done
# the same pipeline without noise worth the name (epsilon 1e6), at epsilon 8's settings
read -r _ k rel msurv g phi <<<"${settings[0]}"
run dp-noiseless "${common[@]}" --dp-epsilon 1000000 --rounds "$rel" --factors "$k" \
    --dp-min-survivors "$msurv" --dp-gram-weight "$g" --dp-gram-floor "$phi"
# epsilon 8 with noise for every client (no dropout tolerated): what the
# survivor floor costs
run dp-eps8-all "${common[@]}" --dp-epsilon 8 --rounds "$rel" --factors "$k" \
    --dp-min-survivors 1.0 --dp-gram-weight "$g" --dp-gram-floor "$phi"
# the non-private federated model: whatever fedrec-sim run trains by default
# (its step, rounds, cohort and dropout), over the plain sum SecAgg unmasks
# (--secagg off: the same sum without masking, which the oracle checks in the
# SecAgg runs of docs/data.md)
run federated --data "$data" --split "$split" --secagg off --threads 2 --quiet

python3 "$src/scripts/dp_curve.py" "$out" "$split"
