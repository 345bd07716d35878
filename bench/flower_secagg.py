#!/usr/bin/python3
"""The compute of one round of Flower's SecAgg+, with Flower's own functions.

    flower_secagg.py --flwr DIR [--n 500] [--k 16] [--t 9] [--d 117121]
                     [--dropout 0,0.1] [--seed S] [--json] [--interleave CMD]

DIR is the directory that holds Flower's `flwr` package (in Flower's
repository: framework/py). Nothing of Flower is copied into fedrec: this
driver loads Flower's modules from DIR at run time and calls them.

What it runs, for every one of the n clients and for the server, in the
order Flower's client mod (flwr/client/mod/secure_aggregation/
secaggplus_mod.py) and server workflow (flwr/server/workflow/
secure_aggregation/secaggplus_workflow.py) call them:

  client, setup:    two SECP384R1 key pairs (generate_key_pairs), serialized
                    (private_key_to_bytes, public_key_to_bytes)
  client, share:    a 32-byte self-mask seed; Shamir shares (create_shares)
                    of the seed and of the serialized sk1, num_shares = k + 1
                    (Flower counts the client itself), threshold t; for each
                    of the k neighbours a shared key (generate_shared_key:
                    ECDH + HKDF) and the encrypted share pair (Fernet:
                    share_keys_plaintext_concat, encrypt)
  server:           routes the ciphertexts to their receivers
  client, masked:   decrypts its k share pairs (decrypt,
                    share_keys_plaintext_separate); reads its float update
                    (parameters_to_ndarrays), weights it (parameters_multiply),
                    quantizes it (quantize, stochastic rounding), prepends the
                    weight (factor_combine), adds the self mask
                    (pseudo_rand_gen) and one pairwise mask per neighbour
                    (generate_shared_key, pseudo_rand_gen, addition or
                    subtraction by node id), reduces mod 2^32 (parameters_mod)
                    and serializes (ndarray_to_bytes)
  server, collect:  deserializes (bytes_to_ndarray) and sums the survivors'
                    masked vectors (parameters_addition, parameters_mod)
  client, unmask:   the seed shares of its surviving neighbours and the sk1
                    shares of its dropped ones
  server, unmask:   rebuilds every member's secret (combine_shares); removes
                    each survivor's self mask (pseudo_rand_gen) and each
                    dropped client's pairwise masks (bytes_to_private_key,
                    generate_shared_key, pseudo_rand_gen), reduces
                    (parameters_mod), takes out the weight (factor_extract)
                    and dequantizes (dequantize)

Dropouts: the dropped clients did setup and share keys and send no masked
vector (the costly case for the server). A dropout set is drawn at random
among the sets Flower's own threshold check accepts (every member keeps at
least t live members in its neighbourhood). The masked vectors do not
depend on the dropout set, so one client pass serves every set.

Every client runs for real (no extrapolation) and the unmasked sum is
checked exact against the sum of the quantized inputs. Times are CPU time of
this process (time.process_time: Flower's create_shares runs a thread pool,
whose threads are included). The round's compute is reported both as the
sum over all clients and as n x the median client (the figure fedrec-bench
secagg prints), plus the server's stages.

--interleave CMD runs CMD (e.g. fedrec-bench secagg --only checks --json
--dropout {dropout}) before, between the pieces of and after the round, so
a comparison sees the same load on both sides (bench/flower_compare.sh).

Not measured: transport and message (de)serialization other than the
masked vectors, Flower's record/state bookkeeping (ConfigRecord, the state
dict round trip every stage), the ClientApp's training. Never asserts;
exits 1 if a round's sum is wrong.
"""

import argparse
import dataclasses
import importlib
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import time
import types

import numpy as np


def load_flower(root):
    """Flower's modules from root/flwr, without running flwr's package
    __init__ files (they import grpc, protobuf and the rest of Flower)."""
    if not os.path.isfile(os.path.join(root, "flwr", "common", "secure_aggregation",
                                       "crypto", "shamir.py")):
        sys.exit("flower_secagg: %s does not hold Flower's flwr package "
                 "(flwr/common/secure_aggregation/crypto/shamir.py is missing)" % root)
    # Debian ships pycryptodome as `Cryptodome` (upstream's pycryptodomex
    # name); Flower imports it as `Crypto`. Same library.
    try:
        importlib.import_module("Crypto.Protocol.SecretSharing")
    except ImportError:
        for name in ("Cryptodome", "Cryptodome.Protocol", "Cryptodome.Protocol.SecretSharing",
                     "Cryptodome.Util", "Cryptodome.Util.Padding"):
            sys.modules["Crypto" + name[len("Cryptodome"):]] = importlib.import_module(name)
    for pkg in ("flwr", "flwr.common", "flwr.common.secure_aggregation",
                "flwr.common.secure_aggregation.crypto", "flwr.supercore",
                "flwr.supercore.primitives"):
        m = types.ModuleType(pkg)
        m.__path__ = [os.path.join(root, *pkg.split("."))]
        sys.modules[pkg] = m
    # flwr.common.typing pulls in protobuf; the modules loaded here only use
    # its array aliases in annotations, and Parameters as a record.
    typing_stub = types.ModuleType("flwr.common.typing")

    @dataclasses.dataclass
    class Parameters:
        tensors: list
        tensor_type: str

    typing_stub.NDArray = typing_stub.NDArrayInt = typing_stub.NDArrayFloat = np.ndarray
    typing_stub.NDArrays = list
    typing_stub.Parameters = Parameters
    sys.modules["flwr.common.typing"] = typing_stub
    mods = {}
    for short, name in (
            ("shamir", "flwr.common.secure_aggregation.crypto.shamir"),
            ("sym", "flwr.common.secure_aggregation.crypto.symmetric_encryption"),
            ("arith", "flwr.common.secure_aggregation.ndarrays_arithmetic"),
            ("quant", "flwr.common.secure_aggregation.quantization"),
            ("utils", "flwr.common.secure_aggregation.secaggplus_utils"),
            ("asym", "flwr.supercore.primitives.asymmetric"),
            ("param", "flwr.common.parameter")):
        mods[short] = importlib.import_module(name)
    mods["Parameters"] = Parameters
    return types.SimpleNamespace(**mods)


class Client:
    """One client's protocol state (our own record of what the mod keeps)."""

    def __init__(self, nid):
        self.nid = nid
        self.cpu = {"setup": 0.0, "share": 0.0, "masked": 0.0, "unmask": 0.0}
        self.seed_shares = {}
        self.sk1_shares = {}
        self.ss2 = {}
        self.pks = {}


def cpu():
    return time.process_time()


def client_setup(F, c):
    t0 = cpu()
    sk1, pk1 = F.asym.generate_key_pairs()
    sk2, pk2 = F.asym.generate_key_pairs()
    c.sk1, c.pk1 = F.asym.private_key_to_bytes(sk1), F.asym.public_key_to_bytes(pk1)
    c.sk2, c.pk2 = F.asym.private_key_to_bytes(sk2), F.asym.public_key_to_bytes(pk2)
    c.cpu["setup"] += cpu() - t0


def client_share(F, c, cfg, pks):
    """pks: {node id: (pk1, pk2)} of the client's neighbourhood (itself
    included), in the server's order."""
    t0 = cpu()
    c.pks = pks
    c.seed = os.urandom(32)
    seed_shares = F.shamir.create_shares(c.seed, cfg.t, cfg.num_shares)
    sk1_shares = F.shamir.create_shares(c.sk1, cfg.t, cfg.num_shares)
    out = []
    for idx, (nid, (_, pk2)) in enumerate(pks.items()):
        if nid == c.nid:
            c.seed_shares[nid] = seed_shares[idx]
            c.sk1_shares[nid] = sk1_shares[idx]
            continue
        key = F.sym.generate_shared_key(F.asym.bytes_to_private_key(c.sk2),
                                        F.asym.bytes_to_public_key(pk2))
        c.ss2[nid] = key
        plain = F.utils.share_keys_plaintext_concat(c.nid, nid, seed_shares[idx],
                                                    sk1_shares[idx])
        out.append((nid, F.sym.encrypt(key, plain)))
    c.cpu["share"] += cpu() - t0
    return out


def client_masked(F, c, cfg, inbox, update_bytes, num_examples):
    """inbox: [(source id, ciphertext)]. Returns (masked vector as bytes,
    the quantized input before masking)."""
    t0 = cpu()
    sources = []
    for src, ct in inbox:
        plain = F.sym.decrypt(c.ss2[src], ct)
        actual, dst, seed_share, sk1_share = F.utils.share_keys_plaintext_separate(plain)
        if actual != src or dst != c.nid:
            raise ValueError("share pair from %d for %d reached %d" % (actual, dst, c.nid))
        sources.append(src)
        c.seed_shares[src] = seed_share
        c.sk1_shares[src] = sk1_share
    q_ratio = round(num_examples / cfg.max_weight * cfg.target_range)
    params = F.param.parameters_to_ndarrays(update_bytes)
    params = F.arith.parameters_multiply(params, q_ratio / cfg.target_range)
    quantized = F.quant.quantize(params, cfg.clipping_range, cfg.target_range)
    quantized = F.arith.factor_combine(q_ratio, quantized)
    dims = [a.shape for a in quantized]
    vec = F.arith.parameters_addition(quantized,
                                      F.utils.pseudo_rand_gen(c.seed, cfg.mod_range, dims))
    for nid in sources:
        key = F.sym.generate_shared_key(F.asym.bytes_to_private_key(c.sk1),
                                        F.asym.bytes_to_public_key(c.pks[nid][0]))
        mask = F.utils.pseudo_rand_gen(key, cfg.mod_range, dims)
        if c.nid > nid:
            vec = F.arith.parameters_addition(vec, mask)
        else:
            vec = F.arith.parameters_subtraction(vec, mask)
    vec = F.arith.parameters_mod(vec, cfg.mod_range)
    out = [F.param.ndarray_to_bytes(a) for a in vec]
    c.cpu["masked"] += cpu() - t0
    return out, quantized


def client_unmask(c, live, dead):
    t0 = cpu()
    shares = [c.seed_shares[n] for n in live] + [c.sk1_shares[n] for n in dead]
    c.cpu["unmask"] += cpu() - t0
    return list(live) + list(dead), shares


def choose_dropouts(rng, order, nbrs, t, frac):
    """About frac * n members, drawn at random among the sets that leave
    every member at least t live members in its neighbourhood."""
    live = {u: len(nbrs[u]) for u in order}
    dead = set()
    target = round(frac * len(order))
    cand = list(order)
    rng.shuffle(cand)
    for u in cand:
        if len(dead) >= target:
            break
        if all(live[v] > t for v in nbrs[u]):
            dead.add(u)
            for v in nbrs[u]:
                live[v] -= 1
    return dead


def run(F, cfg, fracs, seed, between=lambda: None):
    """between() runs before the first piece of work, between pieces
    (setup and share keys; each half of the masked vectors; each dropout
    set's server unmask) and after the last; its CPU time is not counted."""
    between()
    rng = random.Random(seed)
    np.random.seed(seed)  # quantize's stochastic rounding draws from it
    n = cfg.n
    ids = [1000 + 7 * i for i in range(n)]
    clients = {u: Client(u) for u in ids}
    server = {"route": 0.0}
    for u in ids:
        client_setup(F, clients[u])
    # the server's neighbourhoods: a ring of num_shares members over a
    # shuffled order, each member in its own neighbourhood
    t0 = cpu()
    order = list(ids)
    rng.shuffle(order)
    half = cfg.num_shares >> 1
    nbrs = {u: {order[(i + o) % n] for o in range(-half, half + 1)}
            for i, u in enumerate(order)}
    server["route"] += cpu() - t0
    inbox = {u: [] for u in ids}
    for u in ids:
        pks = {v: (clients[v].pk1, clients[v].pk2) for v in nbrs[u]}
        sent = client_share(F, clients[u], cfg, pks)
        t0 = cpu()
        for dst, ct in sent:
            inbox[dst].append((u, ct))
        server["route"] += cpu() - t0
    sets = [(f, choose_dropouts(rng, order, nbrs, cfg.t, f)) for f in fracs]
    between()
    zero = [np.zeros((1,), dtype=np.int64), np.zeros((cfg.d - 1,), dtype=np.int64)]
    sums = [None] * len(sets)
    expect = [[z.copy() for z in zero] for _ in sets]
    collect = [0.0] * len(sets)
    for i, u in enumerate(ids):
        if i == n // 2:
            between()
        x = (np.random.rand(cfg.d - 1) * 2.0 - 1.0).astype(np.float32)
        update = F.Parameters(tensors=[F.param.ndarray_to_bytes(x)], tensor_type="numpy.ndarray")
        masked, quantized = client_masked(F, clients[u], cfg, inbox[u], update, 1)
        for s, (_, dead) in enumerate(sets):
            if u in dead:
                continue
            for j, q in enumerate(quantized):
                expect[s][j] += q.reshape(-1)
            t0 = cpu()
            vec = [F.param.bytes_to_ndarray(b) for b in masked]
            sums[s] = vec if sums[s] is None else F.arith.parameters_addition(sums[s], vec)
            collect[s] += cpu() - t0
        inbox[u] = None
    results = []
    for s, (frac, dead) in enumerate(sets):
        between()
        t0 = cpu()
        masked_sum = F.arith.parameters_mod(sums[s], cfg.mod_range)
        collect[s] += cpu() - t0
        live = set(ids) - dead
        unmask_cpu = {u: 0.0 for u in ids}
        collected = {u: [] for u in ids}
        for u in ids:
            if u in dead:
                continue
            before = clients[u].cpu["unmask"]
            owners, shares = client_unmask(clients[u], nbrs[u] & live, nbrs[u] & dead)
            unmask_cpu[u] = clients[u].cpu["unmask"] - before
            for o, sh in zip(owners, shares):
                collected[o].append(sh)
        t0 = cpu()
        vec = masked_sum
        for u, share_list in collected.items():
            if len(share_list) < cfg.t:
                raise ValueError("member %d: %d shares < t" % (u, len(share_list)))
            secret = F.shamir.combine_shares(share_list)
            dims = F.arith.get_parameters_shape(vec)
            if u in live:
                vec = F.arith.parameters_subtraction(
                    vec, F.utils.pseudo_rand_gen(secret, cfg.mod_range, dims))
                continue
            for v in nbrs[u] - {u}:
                key = F.sym.generate_shared_key(F.asym.bytes_to_private_key(secret),
                                                F.asym.bytes_to_public_key(clients[v].pk1))
                mask = F.utils.pseudo_rand_gen(key, cfg.mod_range, dims)
                if u > v:
                    vec = F.arith.parameters_addition(vec, mask)
                else:
                    vec = F.arith.parameters_subtraction(vec, mask)
        recon = F.arith.parameters_mod(vec, cfg.mod_range)
        q_total, body = F.arith.factor_extract(recon)
        agg = F.quant.dequantize(body, cfg.clipping_range, cfg.target_range)
        for a in agg:
            a += -(len(live) - 1) * cfg.clipping_range
            a *= cfg.target_range / q_total
        unmask = cpu() - t0
        # the exact check: the unmasked ring sum is the sum of the
        # survivors' quantized inputs, weight word first
        want = [e % cfg.mod_range for e in expect[s]]
        exact = (int(recon[0][0]) == int(want[0][0]) and
                 np.array_equal(recon[1].reshape(-1), want[1]))
        per_client = []
        for u in ids:
            if u in dead:
                continue
            cc = clients[u].cpu
            per_client.append(cc["setup"] + cc["share"] + cc["masked"] + unmask_cpu[u])
        stage_med = {st: statistics.median(clients[u].cpu[st] for u in live)
                     for st in ("setup", "share", "masked")}
        results.append({
            "dropout": frac, "dropped": len(dead), "survivors": len(live),
            "client_median_s": statistics.median(per_client),
            "client_min_s": min(per_client), "client_max_s": max(per_client),
            "clients_sum_s": sum(per_client) + sum(
                clients[u].cpu["setup"] + clients[u].cpu["share"] for u in dead),
            "stage_median_s": stage_med,
            "server_route_s": server["route"], "server_collect_s": collect[s],
            "server_unmask_s": unmask, "exact": bool(exact),
        })
    between()
    return results


class Interleave:
    """Runs a command between the pieces of Flower's round (fedrec-bench,
    so both are measured under the same load), {dropout} replaced by each
    of the dropouts in turn; keeps its JSON lines."""

    def __init__(self, template, fracs):
        self.template, self.fracs, self.lines, self.i = template, fracs, [], 0

    def __call__(self):
        if not self.template:
            return
        f = self.fracs[self.i % len(self.fracs)]
        self.i += 1
        cmd = shlex.split(self.template.replace("{dropout}", "%g" % f))
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        self.lines += [l for l in out.splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flwr", required=True, help="directory holding Flower's flwr package")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--k", type=int, default=16, help="neighbours per client")
    ap.add_argument("--t", type=int, default=9, help="reconstruction threshold")
    ap.add_argument("--d", type=int, default=117121, help="words, the weight word included")
    ap.add_argument("--dropout", default="0,0.1", help="comma-separated fractions")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--interleave", metavar="CMD", default="",
                    help="a command run before, between the pieces of and after Flower's "
                         "round, {dropout} replaced by each dropout in turn; its JSON lines "
                         "are printed with --json")
    a = ap.parse_args()
    if a.n < 3 or a.k < 2 or a.k % 2 or a.k + 1 > a.n or not 1 < a.t <= a.k or a.d < 2:
        sys.exit("flower_secagg: need n >= 3, an even k >= 2 with k + 1 <= n, "
                 "1 < t <= k, d >= 2")
    fracs = [float(f) for f in a.dropout.split(",")]
    if any(not 0 <= f < 1 for f in fracs):
        sys.exit("flower_secagg: --dropout: fractions in [0, 1)")
    F = load_flower(a.flwr)
    # Flower's defaults (SecAggPlusWorkflow) except max_weight, set to the
    # one example each client reports so the weight ratio is 1 as in fedrec
    cfg = types.SimpleNamespace(n=a.n, k=a.k, t=a.t, d=a.d, num_shares=a.k + 1,
                                clipping_range=8.0, target_range=1 << 22,
                                mod_range=1 << 32, max_weight=1.0)
    wall = time.time()
    inter = Interleave(a.interleave, fracs)
    res = run(F, cfg, fracs, a.seed, inter)
    wall = time.time() - wall
    ok = all(r["exact"] for r in res)
    for r in res:
        r["round_s"] = a.n * r["client_median_s"] + r["server_unmask_s"]
    if a.json:
        for line in inter.lines:
            print(line)
        for r in res:
            print(json.dumps(dict(bench="flower_secagg", n=a.n, k=a.k, t=a.t, d=a.d,
                                  num_shares=cfg.num_shares, seed=a.seed, wall_s=wall, **r)))
    else:
        print("Flower SecAgg+ compute: n = %d, k = %d (num_shares %d), t = %d, d = %d, "
              "every client run, CPU time (wall %.0f s)" % (a.n, a.k, cfg.num_shares, a.t, a.d, wall))
        print("| dropout | survivors | client median (s) | n x median + server unmask (s) | "
              "server collect (s) | server unmask (s) | exact |")
        for r in res:
            print("| %.2f | %d | %.4f | %.2f | %.3f | %.3f | %s |" % (
                r["dropout"], r["survivors"], r["client_median_s"], r["round_s"],
                r["server_collect_s"], r["server_unmask_s"], "yes" if r["exact"] else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
