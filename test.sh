#!/usr/bin/env bash
# Every test, Rust and Python: the workspace's tests, then the Python package built and
# installed into a virtualenv (`pip install ./python`, which builds it with maturin) and
# its pytest suite. The virtualenv is kept between runs ($STRATA_PY_VENV).
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --features strata-tools/gpu
venv=${STRATA_PY_VENV:-$HOME/.cache/strata-test/venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q "./python[test]"
"$venv/bin/python" -m pytest -q -rs python/tests
