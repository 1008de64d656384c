#!/usr/bin/env python3
"""Recall under deletes, before any compaction: strata beside hnswlib's mark_deleted.

Deletes the same seeded random 10/30/50/90 % of a data set's rows (cumulatively) from a
copy of a built strata store (`strata delete`, no compaction: the CLI does not run the
background compactor) and from hnswlib's index (mark_deleted), and reports recall@10 at
the same ef against brute-force truth over the survivors. (Recall against a fresh store
of the survivors needs a rebuild per fraction: the engine test
`tests/it/compaction.rs::deletes_keep_recall_before_any_compaction` checks that.)

    bench/deletes.py --store DIR --hnswlib INDEX --base B.fvecs --queries Q.fvecs \
        [--metric cosine|l2] [--nq 1000] [--ef 32,64] [--fracs 0.1,0.3,0.5,0.9]

Run with the peers' venv python (numpy, hnswlib). DIR is copied, never changed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def fvecs(path):
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def write_fvecs(path, x):
    n, d = x.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = x.astype(np.float32).view(np.int32)
    out.tofile(path)


def truth(base, q, alive, k, metric):
    if metric == "cosine":
        s = q @ base.T
    else:
        s = -(np.sum(q * q, 1)[:, None] - 2 * q @ base.T + np.sum(base * base, 1)[None, :])
    s[:, ~alive] = -np.inf
    return np.argsort(-s, axis=1)[:, :k]


def recall(found, gt):
    return float(np.mean([len(set(f) & set(g)) / len(g) for f, g in zip(found, gt)]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--hnswlib", required=True, help="hnswlib index file (built with M=16, efC=200 and kept when absent)")
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--metric", default="cosine")
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--ef", default="32,64")
    ap.add_argument("--fracs", default="0.1,0.3,0.5,0.9")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--strata", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "strata"))
    a = ap.parse_args()
    import hnswlib

    base = fvecs(a.base)
    q = fvecs(a.queries)[: a.nq]
    if a.metric == "cosine":
        base /= np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-30)
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    n, dim = base.shape
    efs = [int(x) for x in a.ef.split(",")]
    order = np.random.default_rng(a.seed).permutation(n)
    tmp = tempfile.mkdtemp(prefix="strata-deletes-")
    store = os.path.join(tmp, "store")
    shutil.copytree(a.store, store)
    qf = os.path.join(tmp, "q.fvecs")
    write_fvecs(qf, q)
    index = hnswlib.Index(space="ip" if a.metric == "cosine" else "l2", dim=dim)
    if os.path.exists(a.hnswlib):
        index.load_index(a.hnswlib, max_elements=n)
    else:  # built as peers.py builds it (M=16, efConstruction=200), then kept
        index.init_index(max_elements=n, M=16, ef_construction=200, random_seed=100)
        index.add_items(base, np.arange(n))
        index.save_index(a.hnswlib)
    alive = np.ones(n, dtype=bool)
    done = 0
    rows = []
    for frac in [float(x) for x in a.fracs.split(",")]:
        upto = int(n * frac)
        ids = order[done:upto]
        alive[ids] = False
        for i in ids:
            index.mark_deleted(int(i))
        ids_file = os.path.join(tmp, "ids.txt")
        np.savetxt(ids_file, ids, fmt="%d")
        subprocess.run([a.strata, "delete", store, "--ids-file", ids_file], check=True, capture_output=True)
        done = upto
        gt = truth(base, q, alive, 10, a.metric)
        for ef in efs:
            index.set_ef(max(ef, 10))
            t = time.perf_counter()
            labels, _ = index.knn_query(q, k=10, num_threads=1)
            h_s = time.perf_counter() - t
            out = subprocess.run(
                [a.strata, "search", store, "--queries", qf, "--k", "10", "--ef", str(ef), "--rerank", "100"],
                check=True, capture_output=True, text=True).stdout
            found = [json.loads(l)["ids"] for l in out.splitlines() if l.strip()]
            row = {"deleted": frac, "ef": ef, "strata_recall": round(recall(found, gt), 4),
                   "strata_k_always": all(len(f) == 10 for f in found),
                   "hnswlib_recall": round(recall(labels, gt), 4), "hnswlib_qps": round(len(q) / h_s)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    shutil.rmtree(tmp)
    print("| deleted | ef | strata recall@10 | hnswlib mark_deleted recall@10 |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['deleted']:.0%} | {r['ef']} | {r['strata_recall']} | {r['hnswlib_recall']} |")


if __name__ == "__main__":
    sys.exit(main())
