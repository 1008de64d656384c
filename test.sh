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
if [ ! -x "$venv/bin/moto_server" ]; then
  "$venv/bin/pip" install -q "moto[server]==5.2.5"
fi
port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "${TMPDIR:-/tmp}/strata-moto-$port.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
export STRATA_TEST_S3="http://127.0.0.1:$port"
# Wait for the server, then create the tests' bucket.
"$venv/bin/python" - "$STRATA_TEST_S3" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/strata-test", method="PUT"), timeout=2)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("moto's S3 server did not start")
PY
cargo test --workspace --features strata-tools/gpu
"$venv/bin/pip" install -q "./python[test]"
"$venv/bin/python" -m pytest -q -rs python/tests
