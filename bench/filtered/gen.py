#!/usr/bin/env python3
"""Generates a filtered-search benchmark from a TEXMEX data set: attributes for every base
row, one filter per query per bucket, and the exact top-k among each query's matching rows.

Buckets (the filter of query i, and about how many rows pass):

  kw50     {"kw50": "a"}                         50 %
  kw10     {"kw10": "v{i mod 10}"}               10 %
  kw1      {"kw1": "v{i mod 100}"}                1 %
  kw01     {"kw01": "v{i mod 1000}"}            0.1 %
  tenant   {"tenant": t}                        0.01 % (10,000 tenants: many small values)
  range10  {"n": {"$gte": lo, "$lt": lo + 1e5}}   10 % (an integer range)
  range1   {"n": {"$gte": lo, "$lt": lo + 1e4}}    1 %
  tags2    {"$and": [{"tags": {"$contains": a}}, {"tags": {"$contains": b}}]}
           two Zipf-distributed tags ANDed (a, b among the 20 most common)
  near     {"cluster": the query's own cluster}  positively correlated with the query
  far      {"cluster": the cluster farthest from the query}   negatively correlated

Writes to --out: meta.jsonl (line i: metadata of base row i), queries.fvecs (the first
--nq queries), and per bucket BUCKET.filters.jsonl (line i: the filter of query i),
BUCKET.gt.ivecs (exact top-k among the matching rows, nearest first; fewer than k when
fewer rows match, padded with -1), BUCKET.mask.npy (the matching rows of each query,
bit-packed little-endian, for the peers), and buckets.json (each bucket's selectivity).
Distances are computed in float64: squared L2, or 1 - cos for --metric cosine.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "peers"))
import texmex  # noqa: E402

CLUSTERS = 256
TENANTS = 10_000
TAGS = 200


def distances(base, queries, metric):
    """nq x n float64 distances (cosine: the inputs are already unit length)."""
    dots = queries.astype(np.float64) @ base.astype(np.float64).T
    if metric == "cosine":
        return 1.0 - dots
    qn = (queries.astype(np.float64) ** 2).sum(1)[:, None]
    bn = (base.astype(np.float64) ** 2).sum(1)[None, :]
    return qn - 2 * dots + bn


def unit(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1
    return (x / n).astype(np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--metric", choices=["l2", "cosine"], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--nq", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    base = texmex.read_fvecs(a.base)
    queries = texmex.read_fvecs(a.queries, max_rows=a.nq)
    n, nq = len(base), len(queries)
    if a.metric == "cosine":
        base, queries = unit(base), unit(queries)

    # Attributes of every base row.
    kw50 = rng.integers(0, 2, n)
    kw10 = rng.integers(0, 10, n)
    kw1 = rng.integers(0, 100, n)
    kw01 = rng.integers(0, 1000, n)
    tenant = rng.integers(0, TENANTS, n)
    num = rng.integers(0, 1_000_000, n)
    zipf = 1.0 / np.arange(1, TAGS + 1)
    zipf /= zipf.sum()
    ntags = rng.integers(1, 6, n)
    tags = [sorted(set(rng.choice(TAGS, size=c, p=zipf).tolist())) for c in ntags]
    centroids = base[rng.choice(n, CLUSTERS, replace=False)]
    cluster = np.empty(n, dtype=np.int64)
    for s in range(0, n, 50_000):
        cluster[s:s + 50_000] = distances(centroids, base[s:s + 50_000], a.metric).argmin(1)
    with open(os.path.join(a.out, "meta.jsonl"), "w") as f:
        for i in range(n):
            f.write(json.dumps({
                "kw50": "ab"[kw50[i]], "kw10": f"v{kw10[i]}", "kw1": f"v{kw1[i]}",
                "kw01": f"v{kw01[i]}", "tenant": int(tenant[i]), "n": int(num[i]),
                "tags": [f"t{t}" for t in tags[i]], "cluster": int(cluster[i]),
            }) + "\n")
    texmex.write_fvecs(os.path.join(a.out, "queries.fvecs"), queries)

    # Each query's filter and its row mask, per bucket.
    tag_sets = [set(t) for t in tags]
    qc = distances(centroids, queries, a.metric)  # nq x CLUSTERS
    buckets = {}

    def bucket(name, per_query):
        buckets[name] = per_query

    bucket("kw50", [({"kw50": "a"}, kw50 == 0) for _ in range(nq)])
    bucket("kw10", [({"kw10": f"v{i % 10}"}, kw10 == i % 10) for i in range(nq)])
    bucket("kw1", [({"kw1": f"v{i % 100}"}, kw1 == i % 100) for i in range(nq)])
    bucket("kw01", [({"kw01": f"v{i % 1000}"}, kw01 == i % 1000) for i in range(nq)])
    ts = rng.integers(0, TENANTS, nq)
    bucket("tenant", [({"tenant": int(t)}, tenant == t) for t in ts])
    for name, width in [("range10", 100_000), ("range1", 10_000)]:
        los = rng.integers(0, 1_000_000 - width, nq)
        bucket(name, [({"n": {"$gte": int(lo), "$lt": int(lo + width)}}, (num >= lo) & (num < lo + width)) for lo in los])
    pairs = [tuple(sorted(rng.choice(20, 2, replace=False).tolist())) for _ in range(nq)]
    bucket("tags2", [(
        {"$and": [{"tags": {"$contains": f"t{x}"}}, {"tags": {"$contains": f"t{y}"}}]},
        np.fromiter((x in s and y in s for s in tag_sets), dtype=bool, count=n),
    ) for x, y in pairs])
    bucket("near", [({"cluster": int(qc[i].argmin())}, cluster == qc[i].argmin()) for i in range(nq)])
    bucket("far", [({"cluster": int(qc[i].argmax())}, cluster == qc[i].argmax()) for i in range(nq)])

    # Exact top-k among each query's matching rows.
    summary = {}
    gts = {name: np.full((nq, a.k), -1, dtype=np.int32) for name in buckets}
    for s in range(0, nq, 25):
        d = distances(base, queries[s:s + 25], a.metric)
        for name, per_query in buckets.items():
            for j in range(d.shape[0]):
                mask = per_query[s + j][1]
                rows = np.flatnonzero(mask)
                dd = d[j, rows]
                take = min(a.k, len(rows))
                best = rows[np.lexsort((rows, dd))[:take]]
                gts[name][s + j, :take] = best
    for name, per_query in buckets.items():
        with open(os.path.join(a.out, f"{name}.filters.jsonl"), "w") as f:
            for flt, _ in per_query:
                f.write(json.dumps(flt) + "\n")
        texmex.write_ivecs(os.path.join(a.out, f"{name}.gt.ivecs"), gts[name])
        masks = np.stack([np.packbits(m, bitorder="little") for _, m in per_query])
        np.save(os.path.join(a.out, f"{name}.mask.npy"), masks)
        counts = np.array([m.sum() for _, m in per_query])
        summary[name] = {
            "selectivity": float(counts.mean() / n),
            "min_matches": int(counts.min()),
            "filter_example": per_query[0][0],
        }
        print(f"{name:8} selectivity {counts.mean() / n:8.4%}  matches min {counts.min()} mean {counts.mean():.0f}")
    with open(os.path.join(a.out, "buckets.json"), "w") as f:
        json.dump({"n": n, "nq": nq, "k": a.k, "metric": a.metric, "buckets": summary}, f, indent=1)


if __name__ == "__main__":
    main()
