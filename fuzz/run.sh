#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) with libFuzzer on stable Rust
# (sanitizer none). Installs cargo-fuzz if missing. Crashes land in fuzz/artifacts/<target>/,
# where the proof suite (tests/tests/proof/fuzz_corpus.rs) replays them on every cargo test.
# Prints the executions each target reached.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
for t in wal_replay segment_open manifest_decode deletion_decode store_open store_ops filter_parse metadata_decode field_index_decode text_index_decode remote_decode; do
  echo "== $t ($secs s)"
  cargo fuzz run -s none "$t" -- -max_total_time="$secs" -rss_limit_mb=2048
done
