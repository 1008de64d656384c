#!/usr/bin/env bash
# Runs `strata bench` and ../shared/peers/peers.py on the same files in ONE invocation
# (the machine is shared and noisy: only figures from the same run compare) and prints
# one side-by-side table.
#
#   bench/compare.sh DATASET [PEERS] [NQ]
#     DATASET  glove-50 | siftsmall | a directory with *_base.fvecs, *_query.fvecs, *_groundtruth.ivecs
#     PEERS    comma list for peers.py --peers (default: hnswlib-hnsw,faiss-ivfpq-refine,faiss-flat)
#     NQ       queries to use (default: 1000)
#
# Needs the peers' virtualenv (../shared/peers/setup.sh) and builds target/release/strata.
set -euo pipefail
ds=${1:?usage: bench/compare.sh DATASET [PEERS] [NQ]}
peers=${2:-hnswlib-hnsw,faiss-ivfpq-refine,faiss-flat}
nq=${3:-1000}
. "$(dirname "$0")/dataset.sh"
(cd "$root" && cargo build --release -p strata-tools)
out=${OUT:-/tmp/strata-compare-$name.jsonl}
rm -f "$out"
"$py" "$shared/peers/peers.py" --base "$base" --query "$query" --gt "$gt" --metric "$metric" --k 10 \
  --nq "$nq" --peers "$peers" --json-out "$out" \
  --external "strata=$root/target/release/strata bench --base {base} --queries {query} --gt {gt} --metric {metric} --k {k} --nq $nq --threads {threads} --json {out} --ef 10,16,20,24,32,40,48,64,96,128,192,256 --rerank 50,100"
"$py" "$shared/peers/peers.py" --summarize "$out" --markdown
echo "JSON lines: $out"
