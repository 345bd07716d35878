"""fedrec from Python: the client library through ctypes, and readers of the
simulator's outputs.

Standard library only. The client binds the public C API of
<fedrec/client.h> in libfedrec.so (found through $FEDREC_LIB, then the
system's library path, then the build/ and build-release/ folders of the
source tree this module sits in: scripts/demo.sh builds the latter). The
readers return lists of dicts, or pandas DataFrames when pandas is
importable (frame=None) or asked for (frame=True).

    import fedrec
    s = fedrec.read_summary("results/summary.json")
    rounds = fedrec.read_rounds("results/rounds.csv")   # DataFrame with pandas
    print(s["hr_at_10"], s["git_commit"], len(rounds))
    with fedrec.Client("store", key=bytes(32)) as c: c.record("85123A", 1291191960, 2)
"""
import csv
import ctypes
import ctypes.util
import json
import operator
import os

__all__ = ["FedrecError", "Client", "library", "recover", "EMPTY", "LOST_EVENTS", "read_summary", "read_rounds",
           "read_provenance", "read_index", "read_seeds", "read_compare"]

# ---- readers -----------------------------------------------------------------------------


def _value(text):
    """A CSV cell as written by fedrec-sim: '' -> None, true/false -> bool,
    numbers -> int or float, anything else unchanged."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _frame(rows, frame):
    if frame is False:
        return rows
    try:
        import pandas  # optional
    except ImportError:
        if frame:
            raise
        return rows
    return pandas.DataFrame(rows)


def read_summary(path):
    """summary.json of `fedrec-sim run` as a dict (the README's Outputs
    section names every key)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_provenance(path):
    """The `# key: value` provenance lines at the top of rounds.csv as a dict
    (machine_cores as an int)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("# "):
                break
            key, _, value = line[2:].rstrip("\n").partition(": ")
            out[key] = int(value) if key == "machine_cores" else value
    return out


def _read_csv(path, frame):
    with open(path, newline="", encoding="utf-8") as f:
        lines = (line for line in f if not line.startswith("#"))
        rows = [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(lines)]
    return _frame(rows, frame)


def read_rounds(path, frame=None):
    """rounds.csv of `fedrec-sim run`: one dict per round (or a DataFrame),
    the provenance lines skipped (see read_provenance)."""
    return _read_csv(path, frame)


def read_index(path, frame=None):
    """index.csv of `fedrec-sim sweep`: one dict per point of the grid."""
    return _read_csv(path, frame)


def read_seeds(path):
    """seeds.json of `fedrec-sim run --seeds` as a dict."""
    return read_summary(path)


def read_compare(path, frame=None):
    """compare.csv of `fedrec-sim compare`: one dict per (group, metric)."""
    return _read_csv(path, frame)

# ---- the client library -------------------------------------------------------------------


# fedrec_err values (include/fedrec/fedrec.h) a caller is likely to branch on.
INVALID, IO, TIMEOUT, TRANSPORT, BADKEY, CORRUPT, BUSY, EMPTY = 1, 3, 13, 15, 17, 18, 24, 28
LOST_EVENTS = 29  # the store's log lost committed events: restore it, or recover()


class FedrecError(Exception):
    """A fedrec_err other than FEDREC_OK: .code (the C value), .name (the
    short description, fedrec_strerror) and the library's message."""

    def __init__(self, code, name, message):
        super().__init__("%s: %s" % (name, message) if message else name)
        self.code, self.name, self.message = code, name, message


_lib = None


def library():
    """The loaded libfedrec (ctypes.CDLL), with the prototypes declared."""
    global _lib
    if _lib is not None:
        return _lib
    here = os.path.dirname(os.path.abspath(__file__))
    tree = os.path.join(here, "..", "..", "..")
    candidates = [os.environ.get("FEDREC_LIB"), ctypes.util.find_library("fedrec"),
                  os.path.join(tree, "build", "libfedrec.so"),
                  os.path.join(tree, "build-release", "libfedrec.so")]
    errors = []
    for c in candidates:
        if not c:
            continue
        try:
            lib = ctypes.CDLL(c)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        raise OSError("libfedrec not found (set FEDREC_LIB): " + "; ".join(errors))
    P, I, U32, U64, SZ = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_size_t
    sig = {
        "fedrec_strerror": (ctypes.c_char_p, [I]),
        "fedrec_errmsg": (ctypes.c_char_p, []),
        "fedrec_version": (ctypes.c_char_p, []),
        "fedrec_client_store_key_bytes": (SZ, []),
        "fedrec_client_info_size": (SZ, []),
        "fedrec_recommendation_size": (SZ, []),
        "fedrec_client_open": (I, [ctypes.POINTER(P), ctypes.c_char_p, ctypes.c_char_p,
                                   ctypes.c_char_p]),
        "fedrec_client_close": (None, [P]),
        "fedrec_client_record": (I, [P, ctypes.c_char_p, ctypes.c_int64, U32]),
        "fedrec_client_recommend": (I, [P, U32, P, ctypes.POINTER(U32)]),
        "fedrec_client_set_participation": (I, [P, I]),
        "fedrec_client_get_participation": (I, [P, ctypes.POINTER(I)]),
        "fedrec_client_get_info": (I, [P, P]),
        "fedrec_client_forget": (I, [P]),
        "fedrec_client_recover": (I, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(U64)]),
        "fedrec_client_recover_passphrase": (I, [ctypes.c_char_p, ctypes.c_char_p, SZ,
                                                 ctypes.POINTER(U64)]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    _lib = lib
    return lib


class _Info(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("client_id", ctypes.c_uint64),
                ("identity_pk", ctypes.c_uint8 * 32), ("opted_in", ctypes.c_int),
                ("purchases", ctypes.c_uint64), ("model_version", ctypes.c_uint64),
                ("model_items", ctypes.c_uint32), ("model_factors", ctypes.c_uint32),
                ("ledger_entries", ctypes.c_uint64)]


class _Rec(ctypes.Structure):
    _fields_ = [("item_code", ctypes.c_char * 32), ("score", ctypes.c_float)]


def _int_in(what, v, lo, hi):
    """v as an int in [lo, hi], else ValueError naming it (ctypes would wrap
    -2 into a uint32 quantity of 4294967294 without a word)."""
    if isinstance(v, bool):
        raise TypeError("%s must be an int, not bool" % what)
    try:
        v = operator.index(v)  # int, numpy integers; not float or str
    except TypeError:
        raise TypeError("%s must be an int, not %s" % (what, type(v).__name__)) from None
    if not lo <= v <= hi:
        raise ValueError("%s is %d, expected %d..%d" % (what, v, lo, hi))
    return v


def _check(err):
    if err:
        lib = library()
        raise FedrecError(err, lib.fedrec_strerror(err).decode(),
                          (lib.fedrec_errmsg() or b"").decode(errors="replace"))


def recover(store, key=None, passphrase=None):
    """fedrec_client_recover: keeps what is left of a store whose open raised
    FedrecError LOST_EVENTS (its log lost committed events), writing a new
    snapshot and an empty log so the next open succeeds. Exactly one of
    `key` (32 bytes) and `passphrase` (str or bytes). Returns the number of
    committed events that were missing (0: none, nothing written). The
    store must not be open."""
    lib = library()
    if (key is None) == (passphrase is None):
        raise ValueError("exactly one of key and passphrase")
    lost = ctypes.c_uint64()
    if key is not None:
        if len(key) != lib.fedrec_client_store_key_bytes():
            raise ValueError("key must be %d bytes" % lib.fedrec_client_store_key_bytes())
        _check(lib.fedrec_client_recover(os.fsencode(store), bytes(key), ctypes.byref(lost)))
    else:
        p = passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)
        _check(lib.fedrec_client_recover_passphrase(os.fsencode(store), p, len(p),
                                                    ctypes.byref(lost)))
    return lost.value


class Client:
    """A shopper's store (fedrec_client_open): `key` is the raw store key
    (32 bytes), `coordinator` the URL sync would use (may be None)."""

    def __init__(self, store, key, coordinator=None):
        self._h = ctypes.c_void_p()  # close() and __del__ work if the open fails
        lib = library()
        if len(key) != lib.fedrec_client_store_key_bytes():
            raise ValueError("key must be %d bytes" % lib.fedrec_client_store_key_bytes())
        _check(lib.fedrec_client_open(ctypes.byref(self._h), os.fsencode(store),
                                      coordinator.encode() if coordinator else None, bytes(key)))

    def _live(self):
        if not self._h:
            raise ValueError("fedrec.Client: the store is closed (or forgotten)")
        return self._h

    def close(self):
        if getattr(self, "_h", None):
            library().fedrec_client_close(self._h)
            self._h = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def record(self, item_code, time_unix, quantity=1):
        """One purchase (durable when it returns): item_code a str, time_unix
        Unix seconds (an int64; a float such as time.time() is truncated),
        quantity an int from 1 to 2^32 - 1 (ValueError otherwise, before
        anything is stored)."""
        if not isinstance(item_code, str):
            raise TypeError("record: item_code must be a str, not %s" % type(item_code).__name__)
        if isinstance(time_unix, float) and time_unix == time_unix and abs(time_unix) < 2**63:
            time_unix = int(time_unix)
        t, q = _int_in("record: time_unix", time_unix, -2**63, 2**63 - 1), \
            _int_in("record: quantity", quantity, 1, 2**32 - 1)
        _check(library().fedrec_client_record(self._live(), item_code.encode(), t, q))

    def recommend(self, k=10):
        """The top k (item_code, score) pairs, best first; FedrecError EMPTY
        before the first sync."""
        k = _int_in("recommend: k", k, 1, 1000000)
        out = (_Rec * k)()
        n = ctypes.c_uint32()
        _check(library().fedrec_client_recommend(self._live(), k, out, ctypes.byref(n)))
        return [(out[i].item_code.decode(), out[i].score) for i in range(n.value)]

    @property
    def participating(self):
        v = ctypes.c_int()
        _check(library().fedrec_client_get_participation(self._live(), ctypes.byref(v)))
        return bool(v.value)

    @participating.setter
    def participating(self, on):
        _check(library().fedrec_client_set_participation(self._live(), 1 if on else 0))

    def info(self):
        """fedrec_client_get_info as a dict."""
        i = _Info(struct_size=ctypes.sizeof(_Info))
        _check(library().fedrec_client_get_info(self._live(), ctypes.byref(i)))
        return {"client_id": i.client_id, "identity_pk": bytes(i.identity_pk),
                "opted_in": bool(i.opted_in), "purchases": i.purchases,
                "model_version": i.model_version, "model_items": i.model_items,
                "model_factors": i.model_factors, "ledger_entries": i.ledger_entries}

    def forget(self):
        """Erases the store (fedrec_client_forget); the handle is gone after."""
        h, self._h = self._live(), ctypes.c_void_p()
        _check(library().fedrec_client_forget(h))
