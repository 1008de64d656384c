#!/usr/bin/env bash
# A store kept in a bucket, measured against moto's S3 server on loopback (started here,
# stopped on exit), with `strata bench-remote`:
#
#   bench/remote.sh DATASET [ROWS] [NQ] [COMMITS]
#     DATASET  glove-50 | siftsmall | manpages-minilm-384 | a directory of *.fvecs
#     ROWS     base rows stored (default 100000; 0: all)
#     NQ       queries (default 1000)
#     COMMITS  bucket-durable writes and one-row flush commits timed (default 200)
#
# Prints bucket-durable write and flush commit latency (p50/p99), a cold replica's bytes
# and time to its first answer, replica QPS cold and warm beside the primary's (same run,
# same process, single thread), and the replica's catch-up after a commit. moto is a
# Python server on the same two cores: latencies are upper bounds of a real S3's work on
# the client side plus moto's own, and only the ratios between figures carry over.
set -euo pipefail
ds=${1:?usage: bench/remote.sh DATASET [ROWS] [NQ] [COMMITS]}
rows=${2:-100000}
nq=${3:-1000}
commits=${4:-200}
NO_PEERS=1 . "$(dirname "$0")/dataset.sh"
(cd "$root" && cargo build --release -p strata-tools)
venv=${STRATA_PY_VENV:-$HOME/.cache/strata-test/venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
moto_bucket=strata-bench . "$root/.ci/moto.sh"
export AWS_ENDPOINT="$moto_endpoint" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
"$root/target/release/strata" bench-remote --remote "s3://strata-bench/$name-$(date +%s)" \
  --base "$base" --queries "$query" --metric "$metric" --rows "$rows" --nq "$nq" --commits "$commits"
