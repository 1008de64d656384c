#!/usr/bin/env python3
"""hnswlib (M=16, efC=200) at chosen `ef` values, measured as peers.py measures it.

    bench/hnswlib_sweep.py BASE QUERY GT METRIC EF[,EF...] [NQ] [RUNS]

peers.py sweeps hnswlib's `ef` over 10, 16, 24, ...; near recall 0.95 on a small set
that is too coarse to compare with a finer sweep of ours. This builds the same index
(2 threads) and times one query per call on one thread (Python call overhead included,
as in peers.py), keeping the fastest of RUNS passes (default 30) over the first NQ
queries (default 100). Run it with the peers' virtualenv, pinned to one CPU:

    d=../shared/data/siftsmall
    taskset -c 1 ~/.cache/strata-peers/venv/bin/python bench/hnswlib_sweep.py \\
        $d/siftsmall_base.fvecs $d/siftsmall_query.fvecs $d/siftsmall_groundtruth.ivecs \\
        l2 10,11,12,13,14,16
"""
import sys
import time

import numpy as np


def vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].view(dtype)


def main():
    if len(sys.argv) < 6:
        print(__doc__.strip())
        sys.exit(2)
    import hnswlib

    base_p, query_p, gt_p, metric, efs = sys.argv[1:6]
    nq = int(sys.argv[6]) if len(sys.argv) > 6 else 100
    runs = int(sys.argv[7]) if len(sys.argv) > 7 else 30
    space = {"l2": "l2", "cosine": "cosine", "ip": "ip"}[metric]
    base = vecs(base_p, np.float32)
    queries = vecs(query_p, np.float32)[:nq]
    truth = vecs(gt_p, np.int32)[:nq, :10]
    index = hnswlib.Index(space=space, dim=base.shape[1])
    index.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=100)
    index.set_num_threads(2)
    index.add_items(base)
    index.set_num_threads(1)
    for ef in (int(e) for e in efs.split(",")):
        index.set_ef(max(ef, 10))
        best, found = 0.0, []
        for _ in range(runs):
            start, found = time.perf_counter(), []
            for q in queries:
                labels, _ = index.knn_query(q, k=10)
                found.append(labels[0])
            best = max(best, len(queries) / (time.perf_counter() - start))
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        print(f"hnswlib ef {ef}: recall@10 {recall:.4f}, {best:,.0f} QPS")


if __name__ == "__main__":
    main()
