#!/usr/bin/env python3
"""Single-thread QPS at a target recall, per config, from peers.py JSON lines.

    bench/at_recall.py RESULTS.jsonl [TARGET ...]     (default target: 0.95)

peers.py's summary reports the first setting at or above a recall, which favours the
side whose sweep happens to have a setting just above it. This prints, for each config
of the file, QPS interpolated linearly between the two settings of its recall/QPS front
(the best QPS at each recall or above) around the target, and its ratio to
`hnswlib-hnsw` when that config is in the file. A config that never reaches the target
prints `-`; one whose lowest setting is already above it prints that setting's QPS.
"""
import collections
import json
import sys


def front(points):
    """(recall, qps) pairs where no other point has both more recall and more QPS."""
    best = []
    for rec, qps in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not best or qps > best[-1][1]:
            best.append((rec, qps))
    return sorted(best)


def qps_at(points, target):
    pts = front(points)
    if not pts or pts[-1][0] < target:
        return None
    if pts[0][0] >= target:
        return pts[0][1]
    for (r1, q1), (r2, q2) in zip(pts, pts[1:]):
        if r1 <= target <= r2:
            return q1 + (q2 - q1) * (target - r1) / (r2 - r1) if r2 > r1 else max(q1, q2)
    return None


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) > 1 else 2)
    targets = [float(t) for t in sys.argv[2:]] or [0.95]
    points = collections.defaultdict(list)
    rss = {}
    for line in open(sys.argv[1]):
        r = json.loads(line)
        if r.get("recall") is None or not r.get("qps_single"):
            continue
        points[r["config"]].append((r["recall"], r["qps_single"]))
        rss[r["config"]] = r.get("loaded_rss_delta_mb")
    for target in targets:
        base = qps_at(points.get("hnswlib-hnsw", []), target)
        print(f"QPS at recall {target} (interpolated), single thread:")
        for config in sorted(points):
            q = qps_at(points[config], target)
            ratio = f"{q / base:.2f}x hnswlib" if q and base else ""
            shown = f"{q:,.0f}" if q else "-"
            print(f"  {config:24} {shown:>10}  {ratio:16} loadMB {rss[config]}")


if __name__ == "__main__":
    main()
