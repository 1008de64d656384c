#!/usr/bin/env python3
"""Batch search through the Python package against the `strata search` command, on the
same store and queries.

    python python/bench/batch_vs_cli.py BASE.fvecs QUERY.fvecs METRIC [--ef 64] [--codec f32]
        [--strata target/release/strata] [--threads 1,2] [--runs 3]

Builds a store with `strata create` and `strata import` (one index build), then for each
thread count runs, best of `runs`: the command (`strata search DIR --queries QUERY --k 10
--ef EF`, output to /dev/null; its time includes starting, opening the store, reading
the queries and writing JSON lines) and `Store.search(matrix, k=10, ef=EF)` in a fresh
Python process (the call only; and the call plus opening the store and reading the
queries). Threads are set with RAYON_NUM_THREADS and the process pinned to that many
CPUs. Prints one line per setting and the ratio.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, sys, time
import numpy as np
t0 = time.perf_counter()
import strata
store, query, ef, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
a = np.fromfile(query, dtype=np.int32)
q = a.reshape(-1, a[0] + 1)[:, 1:].view(np.float32).copy()
db = strata.open(store)
ready = time.perf_counter() - t0
best = None
for _ in range(runs):
    t = time.perf_counter()
    ids, _ = db.search(q, k=10, ef=ef)
    best = min(best or 1e9, time.perf_counter() - t)
print(json.dumps({"nq": len(q), "call_s": best, "with_open_s": best + ready}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("query")
    ap.add_argument("metric", choices=["l2", "cosine", "ip"])
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--codec", default="f32")
    ap.add_argument("--strata", default=os.path.join(os.path.dirname(__file__), "../../target/release/strata"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    strata_bin = os.path.abspath(args.strata)
    with open(args.base, "rb") as f:
        dim = int.from_bytes(f.read(4), "little")
    tmp = tempfile.mkdtemp(prefix="strata-batch-")
    store = os.path.join(tmp, "store")
    try:
        subprocess.run([strata_bin, "create", store, "--dim", str(dim), "--metric", args.metric,
                        "--vector-codec", args.codec], check=True, stdout=subprocess.DEVNULL)
        t = time.perf_counter()
        subprocess.run([strata_bin, "import", store, args.base, "--sync", "never"], check=True,
                       stderr=subprocess.DEVNULL)
        print(f"built {args.base} ({args.codec}) in {time.perf_counter() - t:.1f} s", flush=True)
        for threads in [int(x) for x in args.threads.split(",")]:
            cpus = sorted(os.sched_getaffinity(0))[:threads]
            env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
            pin = lambda: os.sched_setaffinity(0, set(cpus))  # noqa: E731
            cli = None
            for _ in range(args.runs):
                t = time.perf_counter()
                subprocess.run([strata_bin, "search", store, "--queries", args.query, "--k", "10",
                                "--ef", str(args.ef)], check=True, stdout=subprocess.DEVNULL, env=env,
                               preexec_fn=pin)
                cli = min(cli or 1e9, time.perf_counter() - t)
            out = subprocess.run([sys.executable, "-c", CHILD, store, args.query, str(args.ef), str(args.runs)],
                                 check=True, capture_output=True, text=True, env=env, preexec_fn=pin)
            py = json.loads(out.stdout)
            nq = py["nq"]
            print(json.dumps({
                "threads": threads, "ef": args.ef, "nq": nq, "codec": args.codec,
                "cli_qps": round(nq / cli), "python_call_qps": round(nq / py["call_s"]),
                "python_with_open_qps": round(nq / py["with_open_s"]),
                "ratio_call": round(cli / py["call_s"], 3), "ratio_with_open": round(cli / py["with_open_s"], 3),
            }), flush=True)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
