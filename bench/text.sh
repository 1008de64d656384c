#!/usr/bin/env bash
# Text and hybrid search on the manual pages beside bm25s and tantivy, in one run:
# builds strata (release), makes a virtualenv with the peers (bm25s, tantivy from PyPI)
# on first use, then runs bench/text_peers.py (quality and single-thread QPS of every
# mode, and strata's BM25 scores checked against bm25s on the same terms).
# Usage: bench/text.sh [--nq N] [--analyzer default|english|cjk] [--json-out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${STRATA_TEXT_VENV:-$HOME/.cache/strata-bench/text-venv}
if ! "$venv/bin/python" -c "import bm25s, tantivy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "bm25s==0.3.16" "tantivy==0.27.0" numpy
fi
cargo build --release -q -p strata-tools
exec "$venv/bin/python" bench/text_peers.py "$@"
