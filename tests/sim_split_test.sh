#!/usr/bin/env bash
# fedrec-sim split --export writes the split as CSV; a scorer written here in
# python3 (standard library only, nothing from fedrec) reads it back, ranks
# items by popularity as docs/data.md defines it (distinct training buyers,
# ties by lower item index, the customer's training items excluded) and gets
# the popularity metrics fedrec-sim run reports on the same split, to the 6
# decimals of summary.json. Also: fedrec-sim sweep, resumed.
#   sim_split_test.sh FEDREC_SIM DATA WORKDIR
set -u
sim=$1 data=$2 work=$3
fail() { echo "FAIL (split): $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
cd "$work" || fail "cd"
"$sim" split --data "$data" --export=x >split.log 2>&1 || { cat split.log >&2; fail "split --export"; }
"$sim" run --data "$data" --rounds 1 --cohort 40 --secagg off --quiet --out r >run.log 2>&1 ||
    { cat run.log >&2; fail "run"; }
python3 - <<'PY' || fail "the exported split does not score like fedrec"
import csv, json, math
meta = json.load(open("x/split.json"))
users = list(csv.DictReader(open("x/users.csv")))
items = list(csv.DictReader(open("x/items.csv")))
train = list(csv.DictReader(open("x/train.csv")))
test = list(csv.DictReader(open("x/test.csv")))
assert len(users) == meta["users"] and len(items) == meta["items"], meta
assert len(train) == meta["train_interactions"] and len(test) == meta["test_interactions"], meta
assert [int(u["user_index"]) for u in users] == list(range(len(users)))
bought, buyers = {}, [0] * len(items)
for r in train:
    u, i = int(r["user_index"]), int(r["item_index"])
    assert float(r["confidence"]) >= 1.0
    bought.setdefault(u, set()).add(i)
    buyers[i] += 1
held = {}
for r in test:
    held.setdefault(int(r["user_index"]), set()).add(int(r["item_index"]))
assert len(held) == meta["test_users"], (len(held), meta)
order = sorted(range(len(items)), key=lambda i: (-buyers[i], i))
K, hr, ndcg, rec, prec = 10, 0.0, 0.0, 0.0, 0.0
for u, t in held.items():
    top = [i for i in order if i not in bought.get(u, ())][:K]
    hits = [r for r, i in enumerate(top, 1) if i in t]
    hr += 1.0 if hits else 0.0
    idcg = sum(1 / math.log2(r + 1) for r in range(1, min(len(t), K) + 1))
    ndcg += sum(1 / math.log2(r + 1) for r in hits) / idcg
    rec += len(hits) / len(t)
    prec += len(hits) / K
n = len(held)
s = json.load(open("r/summary.json"))
for key, v in (("hr", hr), ("ndcg", ndcg), ("recall", rec)):
    mine, theirs = round(v / n, 6), s["popularity_%s_at_10" % key]
    assert abs(mine - theirs) < 1.5e-6, (key, mine, theirs)
assert s["test_users"] == n and s["items"] == len(items), s
print("independent popularity HR@10 %.6f NDCG@10 %.6f on %d test customers" % (hr / n, ndcg / n, n))
PY
# sweep: 2 x 2 points, an index, and a second call that runs nothing
g='cohort=20,40 dropout=0,0.2'
"$sim" sweep --grid "$g" --data "$data" --rounds 1 --secagg off --quiet --out=w >sweep.log 2>&1 ||
    { cat sweep.log >&2; fail "sweep"; }
[ "$(tail -n +2 w/index.csv | grep -c ',finished,')" -eq 4 ] || { cat w/index.csv >&2; fail "index"; }
grep -q '^3,cohort=40_dropout=0,40,0,finished,0\.' w/index.csv || { cat w/index.csv >&2; fail "row 3"; }
for d in w/cohort=20_dropout=0 w/cohort=20_dropout=0.2 w/cohort=40_dropout=0 w/cohort=40_dropout=0.2; do
    [ -s "$d/summary.json" ] || fail "no $d/summary.json"
done
grep -q '"cohort": 40,' w/cohort=40_dropout=0.2/summary.json || fail "the point's cohort is not 40"
grep -q '"dropout": 0.2,' w/cohort=40_dropout=0.2/summary.json || fail "the point's dropout"
keep=$(stat -c %Y.%s w/cohort=20_dropout=0/summary.json w/cohort=40_dropout=0/summary.json \
    w/cohort=40_dropout=0.2/summary.json)
rm -rf w/cohort=20_dropout=0.2 # as if interrupted there
sleep 1
"$sim" sweep --grid "$g" --data "$data" --rounds 1 --secagg off --quiet --out=w >again.log 2>&1 ||
    { cat again.log >&2; fail "sweep again"; }
[ "$(grep -c 'finished before, kept' again.log)" -eq 3 ] || { cat again.log >&2; fail "not resumed"; }
grep -q '2/4 w/cohort=20_dropout=0.2$' again.log || { cat again.log >&2; fail "point 2 not run"; }
[ -s w/cohort=20_dropout=0.2/summary.json ] || fail "the missing point was not run"
[ "$(stat -c %Y.%s w/cohort=20_dropout=0/summary.json w/cohort=40_dropout=0/summary.json \
    w/cohort=40_dropout=0.2/summary.json)" = "$keep" ] || fail "a finished point was redone"
# a repeated value or option is refused before anything runs (cohort=40,40
# ran the same folder twice, two rows in index.csv)
for bad in "cohort=40,40|cohort: value '40' given twice" "cohort=20 cohort=40|cohort given twice"; do
    rc=0
    "$sim" sweep --grid "${bad%%|*}" --data "$data" --rounds 1 --secagg off --quiet --out=dup \
        >dup.log 2>&1 || rc=$?
    [ "$rc" -eq 2 ] && grep -qF "fedrec-sim sweep: --grid: ${bad#*|}" dup.log && [ ! -e dup ] ||
        { cat dup.log >&2; fail "sweep --grid '${bad%%|*}': exit $rc"; }
done
echo "ok: split"
