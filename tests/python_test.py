#!/usr/bin/env python3
"""The Python module bindings/python/fedrec with Debian's python3 (standard
library only): the readers on a real fedrec-sim run, the ctypes client on a
fresh store. Usage: python_test.py FEDREC_SIM LIBFEDREC DATA WORKDIR"""
import ctypes
import json
import os
import shutil
import subprocess
import sys

sim, lib, data, work = sys.argv[1:5]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings",
                                "python"))
os.environ["FEDREC_LIB"] = lib
import fedrec  # noqa: E402

shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
out = os.path.join(work, "run")
subprocess.run([sim, "run", "--data", data, "--rounds", "3", "--cohort", "40", "--secagg", "off",
                "--eval-every", "2", "--quiet", "--out", out], check=True, stdout=subprocess.DEVNULL)

# readers: the values are the files' own, typed
s = fedrec.read_summary(os.path.join(out, "summary.json"))
assert s == json.load(open(os.path.join(out, "summary.json")))
assert s["rounds"] == 3 and s["secagg"] == "off" and s["secagg_verified"] is False, s
rows = fedrec.read_rounds(os.path.join(out, "rounds.csv"), frame=False)
assert [r["round"] for r in rows] == [1, 2, 3], rows
assert all(r["completed"] is True for r in rows), rows
assert all(r["verified"] is None for r in rows), rows  # not checked with --secagg off
assert rows[0]["hr_at_10"] is None and rows[1]["hr_at_10"] is not None  # --eval-every 2
assert abs(rows[2]["hr_at_10"] - s["hr_at_10"]) < 1e-9, (rows[2], s["hr_at_10"])
assert isinstance(rows[2]["heap_kb"], int) and rows[2]["heap_kb"] > 0
p = fedrec.read_provenance(os.path.join(out, "rounds.csv"))
for k in ("fedrec_version", "git_commit", "command_line", "input_sha256", "started_utc",
          "machine"):
    assert p[k] == s[k], (k, p[k], s[k])
assert p["machine_cores"] == s["machine_cores"] >= 1
try:
    import pandas  # noqa: F401  (not on the CI machine; the list path is what CI tests)
    df = fedrec.read_rounds(os.path.join(out, "rounds.csv"))
    assert list(df["round"]) == [1, 2, 3]
except ImportError:
    assert isinstance(fedrec.read_rounds(os.path.join(out, "rounds.csv")), list)

# the client through ctypes: struct sizes agree with the library's
L = fedrec.library()
assert ctypes.sizeof(fedrec._Info) == L.fedrec_client_info_size()
assert ctypes.sizeof(fedrec._Rec) == L.fedrec_recommendation_size()
store = os.path.join(work, "store")
key = bytes(range(32))
with fedrec.Client(store, key) as c:
    c.record("85123A", 1291191960, 6)
    c.record("71053", 1291191960, 1)
    c.record("85123A", 1291200000)
    i = c.info()
    assert i["purchases"] == 3 and i["opted_in"] and i["model_version"] == 0, i
    assert len(i["identity_pk"]) == 32
    try:
        c.recommend(5)
        raise AssertionError("recommend without a model")
    except fedrec.FedrecError as e:
        assert e.code == 28 and e.name, (e.code, str(e))  # FEDREC_ERR_EMPTY
    c.participating = False
    assert c.participating is False
    try:
        c.record("bad,code", 0)
        raise AssertionError("a code with a comma")
    except fedrec.FedrecError as e:
        assert e.code == 1, e  # FEDREC_ERR_INVALID
# reopened: the purchases are durable; a wrong key is refused
with fedrec.Client(store, key) as c:
    assert c.info()["purchases"] == 3 and c.participating is False
try:
    fedrec.Client(store, bytes(32))
    raise AssertionError("a wrong key")
except fedrec.FedrecError as e:
    assert e.code == 17, e  # FEDREC_ERR_BADKEY
c = fedrec.Client(store, key)
c.forget()
assert not os.path.exists(store), os.listdir(work)
# a cut log: LOST_EVENTS names the missing events; recover keeps the rest
cut = os.path.join(work, "cut")
with fedrec.Client(cut, key) as c:
    for j in range(10):
        c.record("P%03d" % j, 1700000000 + j)
log = os.path.join(cut, "log")
with open(log, "r+b") as f:
    f.truncate(104 + (os.path.getsize(log) - 104) // 2)  # 104: the log's header
try:
    fedrec.Client(cut, key)
    raise AssertionError("a cut log opened")
except fedrec.FedrecError as e:
    assert e.code == fedrec.LOST_EVENTS == 29, e
    missing = int(e.message.split("log: ")[1].split(" committed events are missing")[0])
    assert 5 <= missing < 10, e
try:
    fedrec.recover(cut, bytes(32))
    raise AssertionError("recover with a wrong key")
except fedrec.FedrecError as e:
    assert e.code == fedrec.BADKEY, e
assert fedrec.recover(cut, key) == missing
assert fedrec.recover(cut, key) == 0
with fedrec.Client(cut, key) as c:
    assert c.info()["purchases"] == 10 - missing
    c.forget()
print("python bindings ok:", fedrec.library().fedrec_version().decode(), "hr_at_10", s["hr_at_10"])
