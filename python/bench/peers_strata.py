#!/usr/bin/env python3
"""Strata through its Python package as an external peer of `../shared/peers/peers.py`.

    peers.py ... --nq N --external strata-python='PY python/bench/peers_strata.py {base} {query} {gt} {metric} {k} {out} {threads} N'

(peers.py hands external peers the whole query file: the argument N uses its first N
queries, as `--nq` does for the peers.) An optional last argument picks the store's vector
codec (`f32`, the default, `f16` or `int8`).

Builds a store from the base vectors through the package (all cores), then in a fresh
process pinned to one CPU (rayon and every thread pool at one thread) opens it and
sweeps `ef`: single-query QPS (one `Store.search` call per query, as hnswlib is called)
and batch QPS (the whole query matrix in one call, one thread), recall@k against the
ground truth. Writes one JSON line per setting to `out`.
"""

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
    if a.size == 0:
        return np.zeros((0, 0), np.float32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].view(np.float32 if path.endswith(".fvecs") else np.int32)


def build(base, metric, store, codec):
    import strata

    x = fvecs(base).astype(np.float32)
    t = time.perf_counter()
    # A bulk load: every row in one memtable (no in-memory graph), flushed once into one
    # segment: one index build.
    memtable_mb = max(64, 2 * x.nbytes >> 20)
    with strata.open(store, dim=x.shape[1], metric=metric, durability="never", vector_codec=codec,
                     memtable_mb=memtable_mb, memtable_index=False) as db:
        for i in range(0, len(x), 10_000):
            db.upsert(list(range(i, min(i + 10_000, len(x)))), x[i : i + 10_000])
        db.flush()
        assert db.stats()["segments"] == 1, db.stats()
    return time.perf_counter() - t


def search(store, query, gt, k, out, build_s, nq, codec):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import strata

    q = fvecs(query)[:nq].astype(np.float32)
    truth = fvecs(gt)[:nq, :k].astype(np.int64)
    db = strata.open(store)
    with open(out, "a") as f:
        for ef in (10, 12, 14, 16, 20, 24, 28, 32, 36, 40, 48, 64, 96, 128, 192, 256):
            best, lat, ids = None, None, None
            for _ in range(2):
                t0 = time.perf_counter()
                l, got = [], []
                for v in q:
                    t = time.perf_counter()
                    keys, _ = db.search(v, k=k, ef=ef)
                    l.append(time.perf_counter() - t)
                    got.append(keys)
                total = time.perf_counter() - t0
                if best is None or total < best:
                    best, lat, ids = total, sorted(l), got
            t = time.perf_counter()
            batch_ids, _ = db.search(q, k=k, ef=ef)
            batch = time.perf_counter() - t
            found = sum(len(set(r[:k]) & set(g)) for r, g in zip(ids, truth.tolist()))
            recall = found / (len(q) * k)
            assert all(list(b[: len(r)]) == list(r) for b, r in zip(batch_ids.tolist(), ids))
            f.write(json.dumps({
                "library": "strata-python", "config": f"strata-python-{codec}",
                "index_type": "hnsw+pq (segment)", "search_param": {"ef": ef},
                "recall": recall, "qps_single": len(q) / best, "qps_batch": len(q) / batch,
                "p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
                "build_s": build_s, "build_threads": os.cpu_count(),
            }) + "\n")
    db.close()


def main():
    if sys.argv[1] == "--search":
        _, _, store, query, gt, k, out, build_s, nq, codec = sys.argv
        return search(store, query, gt, int(k), out, float(build_s), int(nq), codec)
    base, query, gt, metric, k, out, _threads = sys.argv[1:8]
    nq = sys.argv[8] if len(sys.argv) > 8 else str(10**9)
    codec = sys.argv[9] if len(sys.argv) > 9 else "f32"
    metric = {"l2": "l2", "cosine": "cosine", "ip": "ip"}[metric]
    store = os.path.join(tempfile.mkdtemp(prefix="strata-py-"), "store")
    build_s = build(base, metric, store, codec)
    env = dict(os.environ, RAYON_NUM_THREADS="1", OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, __file__, "--search", store, query, gt, k, out, str(build_s), nq, codec],
                   check=True, env=env)
    shutil.rmtree(os.path.dirname(store))


if __name__ == "__main__":
    main()
