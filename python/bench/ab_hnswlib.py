#!/usr/bin/env python3
"""Single-query QPS of strata and hnswlib through Python, alternated in one process.

    python python/bench/ab_hnswlib.py BASE QUERY GT METRIC [--nq 1000] [--rounds 7]
        [--strata-ef 20,24,28] [--hnswlib-ef 20,24,28] [--codec f32] [--work DIR]

Both indexes are built once (hnswlib M=16, efConstruction=200, as
`../shared/peers/peers.py` builds it; strata bulk-loaded into one segment as
`peers_strata.py` does) and saved under `--work` (reused when present). Then, pinned to
one CPU with every thread pool at one thread, each round times every setting of both
libraries once, in alternating order, one `search`/`knn_query` call per query. A figure
of this machine swings by 20-40 % from minute to minute; alternating in one process puts
the two libraries under the same swings, and the median over rounds is reported per
setting with its recall@10, then QPS at `--target` recall interpolated between the
settings around it. Needs `hnswlib` and the `strata` package in the same Python.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def fvecs(path):
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].view(np.float32 if path.endswith(".fvecs") else np.int32)


def build_hnswlib(base, metric, path):
    import hnswlib

    x = fvecs(base).astype(np.float32)
    space = {"l2": "l2", "cosine": "cosine", "ip": "ip"}[metric]
    if not os.path.exists(path):
        ix = hnswlib.Index(space=space, dim=x.shape[1])
        ix.init_index(max_elements=len(x), M=16, ef_construction=200, random_seed=100)
        ix.add_items(x, np.arange(len(x)), num_threads=2)
        ix.save_index(path)
    ix = hnswlib.Index(space=space, dim=x.shape[1])
    ix.load_index(path)
    ix.set_num_threads(1)
    return ix


def build_strata(base, metric, path, codec):
    import strata

    if not os.path.exists(path):
        x = fvecs(base).astype(np.float32)
        memtable_mb = max(64, 2 * x.nbytes >> 20)
        with strata.open(path, dim=x.shape[1], metric=metric, durability="never",
                         vector_codec=codec, memtable_mb=memtable_mb,
                         memtable_index=False) as db:
            for i in range(0, len(x), 10_000):
                db.upsert(list(range(i, min(i + 10_000, len(x)))), x[i: i + 10_000])
            db.flush()
    return strata.open(path)


def timed(search, queries):
    t = time.perf_counter()
    found = [search(v) for v in queries]
    return len(queries) / (time.perf_counter() - t), found


def recall(found, truth, k):
    return sum(len(set(list(f)[:k]) & set(t)) for f, t in zip(found, truth.tolist())) / (len(truth) * k)


def at_target(points, target):
    """QPS at `target` recall, interpolated between the settings around it."""
    points = sorted(points)
    for (r0, q0), (r1, q1) in zip(points, points[1:]):
        if r0 <= target <= r1:
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0) if r1 > r0 else max(q0, q1)
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base")
    p.add_argument("query")
    p.add_argument("gt")
    p.add_argument("metric", choices=["l2", "cosine", "ip"])
    p.add_argument("--nq", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--strata-ef", default="20,24,28")
    p.add_argument("--hnswlib-ef", default="20,24,28")
    p.add_argument("--codec", default="f32")
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--work", default="/tmp/strata-ab")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    name = os.path.basename(a.base).split("_base")[0]
    hn = build_hnswlib(a.base, a.metric, os.path.join(a.work, f"{name}.hnswlib"))
    db = build_strata(a.base, a.metric, os.path.join(a.work, f"{name}.strata-{a.codec}"), a.codec)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    q = fvecs(a.query)[: a.nq].astype(np.float32)
    truth = fvecs(a.gt)[: a.nq, :10].astype(np.int64)
    settings = [("hnswlib", ef) for ef in map(int, a.hnswlib_ef.split(","))]
    settings += [("strata", ef) for ef in map(int, a.strata_ef.split(","))]

    def runner(lib, ef):
        if lib == "hnswlib":
            hn.set_ef(ef)
            return lambda v: hn.knn_query(v, k=10)[0][0]
        return lambda v: db.search(v, k=10, ef=ef)[0]

    qps = {s: [] for s in settings}
    rec = {}
    for r in range(a.rounds):
        order = settings if r % 2 == 0 else settings[::-1]
        for s in order:
            x, found = timed(runner(*s), q)
            qps[s].append(x)
            rec[s] = recall(found, truth, 10)
    print(f"{name}: {a.nq} queries, {a.rounds} alternating rounds, median single-query QPS")
    per_lib = {}
    for s in settings:
        med = statistics.median(qps[s])
        per_lib.setdefault(s[0], []).append((rec[s], med))
        print(f"  {s[0]:8} ef={s[1]:<4} recall={rec[s]:.4f} qps={med:9.0f}  "
              f"(rounds {min(qps[s]):.0f}-{max(qps[s]):.0f})")
    at = {lib: at_target(pts, a.target) for lib, pts in per_lib.items()}
    for lib, v in at.items():
        print(f"  {lib} at recall {a.target}: " + (f"{v:.0f} QPS" if v else "not bracketed"))
    if at.get("strata") and at.get("hnswlib"):
        print(f"  ratio strata / hnswlib: {at['strata'] / at['hnswlib']:.2f}")
    db.close()


if __name__ == "__main__":
    sys.exit(main())
