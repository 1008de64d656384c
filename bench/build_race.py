#!/usr/bin/env python3
"""Segment build time beside hnswlib's, in alternating rounds (builds here vary by 10-20 %
from one run to the next, so one build each is not enough to compare them).

    bench/build_race.py BASE QUERY GT METRIC [ROUNDS] [CODEC[,CODEC...]]

Each round builds hnswlib (M=16, efC=200, 2 threads, `add_items` timed as peers.py
times it, in a fresh process) and then a Strata store per codec (default `int8`) with
`strata bench --build-only` (its `built ... in S s`: reading the file, import, segment
build and close, on 2 threads; the binary is `$STRATA`, default
`target/release/strata`). Prints every time and the medians. Run it with the
peers' virtualenv from the repository root, after `cargo build --release -p strata-tools`:

    d=../shared/data/manpages-minilm-384
    ~/.cache/strata-peers/venv/bin/python bench/build_race.py $d/manpages-minilm-384_base.fvecs \\
        $d/manpages-minilm-384_query.fvecs $d/manpages-minilm-384_groundtruth.ivecs cosine 5 int8,f32
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile

HNSWLIB = """
import sys, time
import numpy as np
import hnswlib
raw = np.fromfile(sys.argv[1], dtype=np.int32)
X = raw.reshape(-1, raw[0] + 1)[:, 1:].view(np.float32)
p = hnswlib.Index(space=sys.argv[2], dim=X.shape[1])
t0 = time.perf_counter()
p.init_index(max_elements=X.shape[0], M=16, ef_construction=200, random_seed=100)
p.add_items(X, np.arange(X.shape[0]), num_threads=2)
print(time.perf_counter() - t0)
"""


def strata_build(base, query, gt, metric, codec):
    binary = os.environ.get("STRATA", "target/release/strata")
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(
            [binary, "bench", "--base", base, "--queries", query, "--gt", gt, "--metric", metric,
             "--vector-codec", codec, "--dir", f"{d}/store", "--build-only"],
            capture_output=True, text=True, check=True)
    m = re.search(r"built \d+ rows in ([0-9.]+) s", out.stdout + out.stderr)
    if not m:
        sys.exit(f"no build time in strata's output:\n{out.stdout}{out.stderr}")
    return float(m.group(1))


def main():
    if len(sys.argv) < 5:
        print(__doc__.strip())
        sys.exit(2)
    base, query, gt, metric = sys.argv[1:5]
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    codecs = (sys.argv[6] if len(sys.argv) > 6 else "int8").split(",")
    space = {"l2": "l2", "cosine": "cosine", "ip": "ip"}[metric]
    times = {"hnswlib": []} | {f"strata-{c}": [] for c in codecs}
    for r in range(rounds):
        h = subprocess.run([sys.executable, "-c", HNSWLIB, base, space],
                           capture_output=True, text=True, check=True)
        times["hnswlib"].append(float(h.stdout.strip()))
        for c in codecs:
            times[f"strata-{c}"].append(strata_build(base, query, gt, metric, c))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
              flush=True)
    ref = statistics.median(times["hnswlib"])
    for k, v in times.items():
        med = statistics.median(v)
        print(f"{k:14s} median {med:.2f} s ({med / ref:.2f}x hnswlib), "
              f"range {min(v):.2f}-{max(v):.2f} s")


if __name__ == "__main__":
    main()
