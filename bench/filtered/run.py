#!/usr/bin/env python3
"""Filtered search, Strata beside hnswlib and faiss in one run, on the buckets `gen.py`
wrote: for each bucket and engine, recall@k and single-thread QPS over a sweep of the
search beam, then a table of each engine's fastest setting that reaches --target recall.

  Strata   `strata bench --metadata --filters` (built once, reused for every bucket;
           the filter is part of the query, the store plans exact scan or graph walk)
  hnswlib  HNSW M=16 efConstruction=200, knn_query(filter=callable) per query
  faiss    IndexHNSWFlat M=16 efConstruction=200, SearchParametersHNSW with an
           IDSelectorBitmap of the query's matching rows

Every engine answers one query at a time on one thread; the filter's row set is given to
the peers precomputed (a bit mask per query, built outside the timed loop), while Strata
evaluates the filter against its metadata indexes inside its timed search. Results go to
--json (one line per engine, bucket and setting) and a Markdown table on stdout.
Run with the peers' virtualenv (`../shared/peers/setup.sh`).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "peers"))
import texmex  # noqa: E402


def recall_of(results, gt, k):
    found = total = 0
    for r, g in zip(results, gt):
        truth = set(int(x) for x in g[:k] if x >= 0)
        total += len(truth)
        found += len(truth.intersection(int(x) for x in r[:k] if x >= 0))
    return found / max(total, 1)


def short_results(results, gt, k):
    """Queries answered with fewer results than min(k, rows that match)."""
    return sum(1 for r, g in zip(results, gt) if sum(1 for x in r if x >= 0) < min(k, sum(1 for x in g if x >= 0)))


def run_strata(a, buckets, out):
    store = os.path.join(a.work, "strata-store")
    jsonl = os.path.join(a.work, "strata.jsonl")
    if os.path.exists(jsonl):
        os.remove(jsonl)
    for i, b in enumerate(buckets):
        cmd = [a.strata, "bench", "--base", a.base, "--queries", os.path.join(a.data, "queries.fvecs"),
               "--gt", os.path.join(a.data, f"{b}.gt.ivecs"), "--metadata", os.path.join(a.data, "meta.jsonl"),
               "--filters", os.path.join(a.data, f"{b}.filters.jsonl"), "--metric", a.metric,
               "--dir", store, "--ef", ",".join(map(str, a.ef)), "--runs", str(a.runs),
               "--json", jsonl, "--tag", b, "--k", str(a.k)]
        if i > 0 or a.reuse:
            cmd.append("--reuse")
        t = time.time()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        print(f"strata {b}: {time.time() - t:.1f} s", file=sys.stderr)
    with open(jsonl) as f:
        for line in f:
            r = json.loads(line)
            out.append({"engine": "strata", "bucket": r["tag"], "ef": r["ef"], "recall": r["recall"],
                        "qps": r["qps_single"], "p99_ms": r["p99_ms"], "min_results": r.get("min_results")})


def sweep(engine, search_one, queries, masks, gts, buckets, a, out, n):
    for b in buckets:
        unpacked = [np.unpackbits(m, bitorder="little", count=n).astype(bool) for m in masks[b]]
        for ef in a.ef:
            results, lat = [], []
            start = time.perf_counter()
            for q, m, packed in zip(queries, unpacked, masks[b]):
                t = time.perf_counter()
                results.append(search_one(q, m, packed, ef))
                lat.append(time.perf_counter() - t)
            total = time.perf_counter() - start
            lat.sort()
            row = {"engine": engine, "bucket": b, "ef": ef, "recall": recall_of(results, gts[b], a.k),
                   "qps": len(queries) / total, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1e3,
                   "short_queries": short_results(results, gts[b], a.k)}
            out.append(row)
            print(f"{engine} {b} ef={ef}: recall {row['recall']:.4f} qps {row['qps']:.1f}", file=sys.stderr)
            if total > a.budget:
                break  # a wider beam is only slower


def run_hnswlib(a, base, queries, masks, gts, buckets, out):
    import hnswlib
    n, d = base.shape
    space = "cosine" if a.metric == "cosine" else "l2"
    t = time.time()
    ix = hnswlib.Index(space=space, dim=d)
    ix.init_index(max_elements=n, M=16, ef_construction=200, random_seed=100)
    ix.set_num_threads(os.cpu_count())
    ix.add_items(base, np.arange(n))
    print(f"hnswlib built in {time.time() - t:.1f} s", file=sys.stderr)
    ix.set_num_threads(1)

    def one(q, m, _packed, ef):
        ix.set_ef(ef)
        try:
            labels, _ = ix.knn_query(q, k=a.k, filter=lambda i: m[i])
            return labels[0].tolist()
        except RuntimeError:
            # Fewer than k results found: hnswlib refuses to return a partial row.
            return []

    sweep("hnswlib", one, queries, masks, gts, buckets, a, out, n)


def run_faiss(a, base, queries, masks, gts, buckets, out):
    import faiss
    n, d = base.shape
    metric = faiss.METRIC_INNER_PRODUCT if a.metric == "cosine" else faiss.METRIC_L2
    t = time.time()
    ix = faiss.IndexHNSWFlat(d, 16, metric)
    ix.hnsw.efConstruction = 200
    faiss.omp_set_num_threads(os.cpu_count())
    ix.add(base)
    print(f"faiss built in {time.time() - t:.1f} s", file=sys.stderr)
    faiss.omp_set_num_threads(1)

    def one(q, _m, packed, ef):
        sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(packed))
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
        _, labels = ix.search(q[None, :], a.k, params=params)
        return labels[0].tolist()

    sweep("faiss", one, queries, masks, gts, buckets, a, out, n)


def table(rows, buckets, engines, target, info):
    print(f"\nrecall@k ≥ {target}: each engine's fastest setting that reaches it "
          "(recall, single-thread QPS, ef); '<' = not reached (best recall shown)\n")
    print("| bucket | selectivity | " + " | ".join(engines) + " |")
    print("|---|---:|" + "---:|" * len(engines))
    for b in buckets:
        cells = []
        for e in engines:
            mine = [r for r in rows if r["engine"] == e and r["bucket"] == b]
            ok = [r for r in mine if r["recall"] >= target]
            if ok:
                r = max(ok, key=lambda r: r["qps"])
                cells.append(f"{r['recall']:.3f} · {r['qps']:,.0f} · ef {r['ef']}")
            elif mine:
                r = max(mine, key=lambda r: r["recall"])
                cells.append(f"< {r['recall']:.3f} · {r['qps']:,.0f} · ef {r['ef']}")
            else:
                cells.append("–")
        sel = info["buckets"][b]["selectivity"]
        print(f"| {b} | {sel:.2%} | " + " | ".join(cells) + " |")
    short = [r for r in rows if (r.get("short_queries") or 0) > 0
             or (r.get("min_results") is not None and r["min_results"] < info["k"])]
    print("\nsettings that returned fewer than k results where k rows match: "
          + (", ".join(f"{r['engine']} {r['bucket']} ef {r['ef']}" for r in short) or "none"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the output folder of gen.py")
    p.add_argument("--base", required=True, help="the base vectors gen.py read")
    p.add_argument("--strata", default="target/release/strata")
    p.add_argument("--work", default="/tmp/strata-filtered")
    p.add_argument("--engines", default="strata,hnswlib,faiss")
    p.add_argument("--buckets", default=None, help="comma-separated (default: all)")
    p.add_argument("--ef", default="16,32,64,128,256,512")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--budget", type=float, default=20.0, help="seconds: stop a sweep past this")
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--reuse", action="store_true", help="reuse the Strata store in --work")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    a.ef = [int(x) for x in a.ef.split(",")]
    info = json.load(open(os.path.join(a.data, "buckets.json")))
    a.k, a.metric = info["k"], info["metric"]
    buckets = a.buckets.split(",") if a.buckets else list(info["buckets"])
    engines = a.engines.split(",")
    os.makedirs(a.work, exist_ok=True)
    rows = []
    if "strata" in engines:
        run_strata(a, buckets, rows)
    peers = [e for e in engines if e != "strata"]
    if peers:
        base = texmex.read_fvecs(a.base)
        if a.metric == "cosine":
            base = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-30)
        base = np.ascontiguousarray(base, dtype=np.float32)
        queries = texmex.read_fvecs(os.path.join(a.data, "queries.fvecs"))
        masks = {b: np.load(os.path.join(a.data, f"{b}.mask.npy")) for b in buckets}
        gts = {b: texmex.read_ivecs(os.path.join(a.data, f"{b}.gt.ivecs")) for b in buckets}
        if "hnswlib" in peers:
            run_hnswlib(a, base, queries, masks, gts, buckets, rows)
        if "faiss" in peers:
            run_faiss(a, base, queries, masks, gts, buckets, rows)
    if a.json:
        with open(a.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    table(rows, buckets, engines, a.target, info)


if __name__ == "__main__":
    main()
