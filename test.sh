#!/usr/bin/env bash
# Every test, Rust and Python: the workspace's tests, then the Python package built and
# installed into a virtualenv (`pip install ./python`, which builds it with maturin) and
# its pytest suite. The virtualenv is kept between runs ($STRATA_PY_VENV). The tests of
# stores kept in a bucket run against moto's S3 server, started here on loopback (bucket
# `strata-test`) and stopped on exit; $STRATA_TEST_S3 names it to the tests.
set -euo pipefail
cd "$(dirname "$0")"
venv=${STRATA_PY_VENV:-$HOME/.cache/strata-test/venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
moto_bucket=strata-test . .ci/moto.sh
export STRATA_TEST_S3="$moto_endpoint"
cargo test --workspace --features strata-tools/gpu
"$venv/bin/pip" install -q "./python[test]"
"$venv/bin/python" -m pytest -q -rs python/tests
