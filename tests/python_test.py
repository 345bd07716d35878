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
    # values ctypes would wrap into a uint32 (-2 was stored as 4294967294)
    # are refused before anything is stored
    for q, exc in ((-2, ValueError), (0, ValueError), (2**32, ValueError), (2.5, TypeError),
                   ("3", TypeError), (True, TypeError)):
        try:
            c.record("85123A", 1291191960, q)
            raise AssertionError("quantity %r recorded" % (q,))
        except exc as e:
            assert "quantity" in str(e), e
    for t in (2**63, "1291191960"):
        try:
            c.record("85123A", t)
            raise AssertionError("time %r recorded" % (t,))
        except (ValueError, TypeError) as e:
            assert "time_unix" in str(e), e
    for k in (0, -1, 10**7):
        try:
            c.recommend(k)
            raise AssertionError("recommend(%r)" % k)
        except ValueError as e:
            assert "recommend: k is" in str(e), e
    assert c.info()["purchases"] == 3  # none of the above was stored
# a closed client says so (was: 'fedrec_client_record: NULL client')
try:
    c.info()
    raise AssertionError("info on a closed client")
except ValueError as e:
    assert "closed" in str(e), e
# a failed open leaves no half-built object behind: no 'Exception ignored' from __del__
unraisable = []
sys.unraisablehook = unraisable.append
for bad_key, exc in ((b"short", ValueError), (bytes(32), fedrec.FedrecError)):
    try:
        fedrec.Client(store, bad_key)
        raise AssertionError("opened with %r" % bad_key)
    except exc:
        pass
import gc  # noqa: E402
gc.collect()
sys.unraisablehook = sys.__unraisablehook__
assert not unraisable, [str(u.exc_value) for u in unraisable]
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
# without FEDREC_LIB, a source tree's build-release/ (scripts/demo.sh) is found
tree = os.path.join(work, "tree")
shutil.copytree(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings",
                             "python", "fedrec"), os.path.join(tree, "bindings", "python", "fedrec"))
os.makedirs(os.path.join(tree, "build-release"))
os.symlink(os.path.abspath(lib), os.path.join(tree, "build-release", "libfedrec.so"))
env = {k: v for k, v in os.environ.items() if k != "FEDREC_LIB"}
found = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                        "import fedrec; print(fedrec.library()._name)",
                        os.path.join(tree, "bindings", "python")],
                       env=env, check=True, capture_output=True, text=True).stdout.strip()
import ctypes.util  # noqa: E402
if ctypes.util.find_library("fedrec") is None:  # an installed libfedrec comes first
    assert found.endswith(os.path.join("build-release", "libfedrec.so")), found
print("python bindings ok:", fedrec.library().fedrec_version().decode(), "hr_at_10", s["hr_at_10"])
