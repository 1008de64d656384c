#!/usr/bin/env bash
# Search by target recall against hand-tuned beam widths, in ONE run of one binary
# (only figures from the same run compare), and the observed-recall estimate:
#
#   bench/target_recall.sh DATASET [NQ] [TARGETS]
#     DATASET  glove-50 | siftsmall | manpages-minilm-384 | a directory with
#              *_base.fvecs, *_query.fvecs, *_groundtruth.ivecs
#     NQ       queries measured (default: 1000)
#     TARGETS  comma-separated target recalls (default: 0.9,0.95,0.99)
#
# The store is calibrated on queries that are not measured: the odd rows of the first
# 2·NQ queries when the query file has them (the even rows are measured), else the
# first max(NQ, 1000) rows of a *_learn.fvecs beside it. Then one sweep: every target, and beam
# widths from 10 to 256 (rerank 100). For each target: the recall reached, its QPS,
# and the best QPS of a hand-tuned width reaching at least that recall. Every target's
# queries are then served once more with all of them sampled (--observe-recall 1): the
# store's observed recall beside the true one.
set -euo pipefail
ds=${1:?usage: bench/target_recall.sh DATASET [NQ] [TARGETS]}
nq=${2:-1000}
targets=${3:-0.9,0.95,0.99}
NO_PEERS=1 . "$(dirname "$0")/dataset.sh"
(cd "$root" && cargo build --release -p strata-tools)
rows=$(( $(stat -c %s "$query") / (4 + 4 * $(od -An -t d4 -N4 "$query" | tr -d ' ')) ))
if [ "$rows" -ge $((2 * nq)) ]; then
  calibrate=(--calibrate-interleaved)
else
  learn=$(ls "$dir"/*_learn.fvecs 2>/dev/null | head -1)
  [ -n "$learn" ] || { echo "$name: fewer than 2·$nq queries and no *_learn.fvecs to calibrate on" >&2; exit 1; }
  calibrate=(--calibrate "$learn" --calibrate-nq $((nq > 1000 ? nq : 1000)))
fi
out=${OUT:-/tmp/strata-target-$name.jsonl}
rm -f "$out"
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
"$root/target/release/strata" bench --base "$base" --queries "$query" --gt "$gt" --metric "$metric" \
  --k 10 --nq "$nq" --dir "$store/s" --json "$out" --runs 3 "${calibrate[@]}" \
  --target-recall "$targets" --observe-recall 1 \
  --ef 10,12,14,16,18,20,22,24,28,32,36,40,44,48,52,56,64,72,80,96,112,128,160,192,256 --rerank 100
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tuned = [r for r in rows if r["config"] == "strata" and r["ef"] is not None]
print("\n| target | recall | QPS | best hand-tuned width (recall) | its QPS | ratio |")
print("|---:|---:|---:|---|---:|---:|")
for r in rows:
    if r.get("target_recall") is None:
        continue
    ok = [t for t in tuned if t["recall"] >= r["recall"]]
    best = max(ok, key=lambda t: t["qps_single"]) if ok else None
    if best:
        print(f"| {r['target_recall']} | {r['recall']:.4f} | {r['qps_single']:,.0f} | {best['ef']} ({best['recall']:.4f}) | {best['qps_single']:,.0f} | {r['qps_single'] / best['qps_single']:.2f} |")
    else:
        print(f"| {r['target_recall']} | {r['recall']:.4f} | {r['qps_single']:,.0f} | none reaches it | | |")
PY
echo "JSON lines: $out"
