#!/usr/bin/env bash
# Recall, speed and disk of each vector codec (f32, f16, int8) beside hnswlib, from ONE
# invocation of ../shared/peers/peers.py (only figures from the same run compare):
#
#   bench/codecs.sh DATASET [NQ]
#     DATASET  glove-50 | siftsmall | manpages-minilm-384 | a directory with
#              *_base.fvecs, *_query.fvecs, *_groundtruth.ivecs
#     NQ       queries to use (default: 1000)
#   RUNS=R     timed passes per setting on both sides, the fastest kept (default 2; a
#              set of 100 queries takes a few milliseconds per pass: use 20 or more)
#
# Each codec is its own config in the table (strata, strata-f16, strata-int8), then
# the QPS of each at recall 0.95 and 0.99 interpolated (bench/at_recall.py); the JSON
# lines (OUT, default /tmp/strata-codecs-DATASET.jsonl) carry vector_bytes and
# front_bytes per store. Needs the peers' virtualenv (../shared/peers/setup.sh).
set -euo pipefail
ds=${1:?usage: bench/codecs.sh DATASET [NQ]}
nq=${2:-1000}
runs=${RUNS:-2}
. "$(dirname "$0")/dataset.sh"
(cd "$root" && cargo build --release -p strata-tools)
out=${OUT:-/tmp/strata-codecs-$name.jsonl}
rm -f "$out"
ext=()
for codec in f32 f16 int8; do
  ext+=(--external "strata-$codec=$root/target/release/strata bench --base {base} --queries {query} --gt {gt} --metric {metric} --k {k} --nq $nq --threads {threads} --runs $runs --json {out} --vector-codec $codec --ef 10,16,20,24,28,32,36,40,48,64,96,128,192,256 --rerank 50,100")
done
"$py" "$shared/peers/peers.py" --base "$base" --query "$query" --gt "$gt" --metric "$metric" --k 10 \
  --nq "$nq" --runs "$runs" --peers hnswlib-hnsw --json-out "$out" "${ext[@]}"
"$py" "$shared/peers/peers.py" --summarize "$out" --markdown
# peers.py reports the first setting at or above each recall; interpolated as well:
python3 "$(dirname "$0")/at_recall.py" "$out" 0.95 0.99
echo "JSON lines: $out"
