#!/usr/bin/env python3
"""Table and plot of scripts/dp_curve.sh's runs (standard library only).

    dp_curve.py OUT SPLIT

Reads OUT/<run>/seed-N/summary.json for the runs dp-eps1 ... dp-eps16,
dp-noiseless and federated; writes OUT/curve.md (mean and lowest-highest seed
of HR@10 and NDCG@10, popularity and centralized ALS from the same runs) and
OUT/privacy_curve.svg (both metrics against log2 epsilon, the seeds' range as
bars, the references as dashed lines).
"""
import glob
import json
import math
import os
import sys

EPS = [1, 2, 4, 8, 16]


def seeds(out, name):
    runs = []
    for p in sorted(glob.glob(os.path.join(out, name, "seed-*", "summary.json"))):
        with open(p) as f:
            runs.append(json.load(f))
    if not runs:
        sys.exit("dp_curve.py: no finished seed under %s" % os.path.join(out, name))
    return runs


def stat(runs, key):
    v = [r[key] for r in runs]
    return sum(v) / len(v), min(v), max(v)


def fmt(s):
    return "%.4f (%.4f–%.4f)" % s


def main():
    out, split = sys.argv[1], sys.argv[2]
    dp = {e: seeds(out, "dp-eps%d" % e) for e in EPS}
    nl = seeds(out, "dp-noiseless")
    fed = seeds(out, "federated")
    ref = nl[0]
    rows = []
    for e in EPS:
        r = dp[e][0]
        rows.append(("DP federated, %d ALS releases" % r["dp_releases_calibrated"], str(e),
                     str(r["factors"]), fmt(stat(dp[e], "hr_at_10")),
                     fmt(stat(dp[e], "ndcg_at_10")), "%.3g" % r["dp_noise_std"]))
    if glob.glob(os.path.join(out, "dp-eps8-all", "seed-*", "summary.json")):
        al = seeds(out, "dp-eps8-all")
        rows.append(("the same, noise for every client (survivor floor 1.0)", "8",
                     str(al[0]["factors"]), fmt(stat(al, "hr_at_10")),
                     fmt(stat(al, "ndcg_at_10")), "%.3g" % al[0]["dp_noise_std"]))
    rows.append(("the same pipeline without noise (ε = 10^6)", "—", str(nl[0]["factors"]),
                 fmt(stat(nl, "hr_at_10")), fmt(stat(nl, "ndcg_at_10")), "—"))
    rows.append(("federated, no DP (fedrec-sim's default: %s step, %d x %d)"
                 % (fed[0].get("step", "gradient"), fed[0]["rounds"], fed[0]["cohort"]), "—",
                 str(fed[0]["factors"]), fmt(stat(fed, "hr_at_10")),
                 fmt(stat(fed, "ndcg_at_10")), "—"))
    rows.append(("popularity", "—", "—", "%.4f" % ref["popularity_hr_at_10"],
                 "%.4f" % ref["popularity_ndcg_at_10"], "—"))
    # centralized ALS from the noiseless runs (their factors; the seed sets its start)
    rows.append(("centralized ALS (%d sweeps)" % ref["als_sweeps"], "—", str(ref["factors"]),
                 fmt(stat(nl, "centralized_hr_at_10")), fmt(stat(nl, "centralized_ndcg_at_10")),
                 "—"))
    fed_hr = stat(fed, "hr_at_10")[0]
    with open(os.path.join(out, "curve.md"), "w") as f:
        f.write("split: %s, %d shoppers evaluated, seeds %s; mean (lowest–highest seed)\n\n"
                % (split, ref["test_users"], ",".join(str(r["seed"]) for r in dp[EPS[0]])))
        f.write("| model | ε | factors | HR@10 | NDCG@10 | noise std |\n")
        f.write("|---|---|---|---|---|---|\n")
        for r in rows:
            f.write("| " + " | ".join(r) + " |\n")
        f.write("\nHR@10 ratio to the non-private federated model (%.4f): " % fed_hr)
        f.write(", ".join("ε = %d: %.3f" % (e, stat(dp[e], "hr_at_10")[0] / fed_hr)
                          for e in EPS) + "\n")
    svg(out, split, dp, nl, fed, ref)
    sys.stdout.write(open(os.path.join(out, "curve.md")).read())


def svg(out, split, dp, nl, fed, ref):
    W, H, L, R, T, PH, GAP = 900, 700, 70, 250, 50, 270, 60
    pw = W - L - R
    parts = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'viewBox="0 0 %d %d" font-family="sans-serif">' % (W, H, W, H),
             '<rect width="100%" height="100%" fill="white"/>',
             '<text x="%.1f" y="28" font-size="15" text-anchor="middle">fedrec: quality vs '
             'privacy on the full log (%s split, delta = 1e-6, 3 seeds)</text>' % (W / 2, split)]
    refs = [("federated, no DP", "#2c7fb8", lambda k: stat(fed, k)[0]),
            ("same pipeline, no noise", "#7fcdbb", lambda k: stat(nl, k)[0]),
            ("centralized ALS", "#555555", lambda k: stat(nl, "centralized_" + k)[0]),
            ("popularity", "#d95f0e", lambda k: ref["popularity_" + k])]
    for pi, (key, label) in enumerate([("hr_at_10", "HR@10"), ("ndcg_at_10", "NDCG@10")]):
        top = T + pi * (PH + GAP)
        vals = [v for e in EPS for v in stat(dp[e], key)[1:]] + [f(key) for _, _, f in refs]
        lo, hi = min(vals), max(vals)
        pad = (hi - lo) * 0.08
        lo, hi = lo - pad, hi + pad

        def X(e):
            return L + pw * (math.log2(e) - 0) / 4.0

        def Y(v):
            return top + PH * (hi - v) / (hi - lo)

        parts.append('<g class="panel" data-ylabel="%s">' % label)
        for i in range(5):
            v = lo + (hi - lo) * i / 4
            parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e6e6e6"/>'
                         % (L, Y(v), L + pw, Y(v)))
            parts.append('<text x="%d" y="%.1f" font-size="11" text-anchor="end">%.3f</text>'
                         % (L - 6, Y(v) + 4, v))
        parts.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>'
                     % (L, top, pw, PH))
        for e in EPS:
            parts.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%d</text>'
                         % (X(e), top + PH + 16, e))
        parts.append('<text x="%.1f" y="%d" font-size="12" text-anchor="middle">epsilon '
                     '(log scale)</text>' % (L + pw / 2, top + PH + 34))
        parts.append('<text x="18" y="%.1f" font-size="12" text-anchor="middle" '
                     'transform="rotate(-90 18 %.1f)">%s</text>'
                     % (top + PH / 2, top + PH / 2, label))
        for name, color, f in refs:
            v = f(key)
            parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" '
                         'stroke-dasharray="6 4" stroke-width="1.5"/>'
                         % (L, Y(v), L + pw, Y(v), color))
        pts = []
        for e in EPS:
            m, a, b = stat(dp[e], key)
            pts.append("%.1f,%.1f" % (X(e), Y(m)))
            parts.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c51b8a" '
                         'stroke-width="1.5"/>' % (X(e), Y(a), X(e), Y(b)))
            parts.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="#c51b8a" data-eps="%d" '
                         'data-mean="%.6f"/>' % (X(e), Y(m), e, m))
        parts.append('<polyline points="%s" fill="none" stroke="#c51b8a" stroke-width="2"/>'
                     % " ".join(pts))
        parts.append('</g>')
    ly = T + 10
    items = [("DP federated (mean, seed range)", "#c51b8a", "")] + \
        [(n, c, "6 4") for n, c, _ in refs]
    for i, (name, color, dash) in enumerate(items):
        y = ly + 20 * i
        parts.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" %s/>'
                     % (W - R + 15, y, W - R + 45, y, color,
                        'stroke-dasharray="%s"' % dash if dash else ""))
        parts.append('<text x="%d" y="%d" font-size="11">%s</text>'
                     % (W - R + 50, y + 4, name))
    parts.append('</svg>')
    with open(os.path.join(out, "privacy_curve.svg"), "w") as f:
        f.write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
