#!/usr/bin/env python3
"""Fan-out search latency of `strata.ray.ShardedStore` on a local Ray cluster, for 1, 2,
4 and 8 shards, beside one store searched directly in the same run:

    python python/bench/ray_fanout.py BASE.fvecs QUERY.fvecs METRIC [ROWS] [NQ] [BUCKET_URL]

Writes ROWS base rows (default 20,000) into each shard count's writers (keys spread by
hash), flushes them to the bucket (default: a local folder through file://; an s3:// URL
takes its endpoint and credentials from the AWS_* variables), opens the shards as read
replicas, and times NQ single-query searches (default 200, k 10, ef 64) end to end from
the client: p50 and p95 in ms, and recall@10 of the merged answer against one store's
exact answer. Prints one JSON line per setting.
"""

import json
import os
import sys
import tempfile
import time

import numpy as np

import strata
import strata.ray as sray


def fvecs(path):
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].copy().view(np.float32)


def timed(search, queries):
    lat = []
    answers = []
    for q in queries:
        t = time.perf_counter()
        answers.append(list(search(q)))
        lat.append((time.perf_counter() - t) * 1e3)
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.95))], answers


def main():
    import ray

    base_path, query_path, metric = sys.argv[1:4]
    rows = int(sys.argv[4]) if len(sys.argv) > 4 else 20_000
    nq = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    base = fvecs(base_path)[:rows]
    queries = fvecs(query_path)[:nq]
    keys = [f"k{i}" for i in range(len(base))]
    work = tempfile.mkdtemp(prefix="strata-fanout-")
    bucket = sys.argv[6] if len(sys.argv) > 6 else f"file://{work}/bucket"
    if bucket.startswith("file://"):
        os.makedirs(bucket[len("file://"):], exist_ok=True)
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)

    with strata.open(os.path.join(work, "one"), dim=base.shape[1], metric=metric, keys="string") as one:
        one.upsert(keys, base)
        one.flush()
        exact = [list(one.search(q, k=10, exact=True)[0]) for q in queries]
        p50, p95, _ = timed(lambda q: one.search(q, k=10, ef=64)[0], queries)
        print(json.dumps({"setting": "one store, direct", "shards": 1, "p50_ms": p50, "p95_ms": p95}), flush=True)

    for shards in (1, 2, 4, 8):
        url = f"{bucket}/s{shards}"
        writers = sray.ShardedStore(shards, os.path.join(work, f"w{shards}"), remote=url, dim=base.shape[1],
                                    metric=metric, keys="string")
        writers.upsert(keys, base)
        writers.flush()
        readers = sray.ShardedStore(shards, os.path.join(work, f"r{shards}"), remote=url, replicas=True)
        readers.search(queries[0], k=10, ef=64)  # warm the replicas' caches' first chunk
        for q in queries:
            readers.search(q, k=10, ef=64)  # warm pass
        p50, p95, answers = timed(lambda q: readers.search(q, k=10, ef=64)[0], queries)
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(answers, exact)])
        print(json.dumps({"setting": "ray replicas", "shards": shards, "p50_ms": p50, "p95_ms": p95,
                          "recall_at_10": float(recall)}), flush=True)
        readers.close()
        writers.close()
    ray.shutdown()


if __name__ == "__main__":
    main()
