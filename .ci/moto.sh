# Sourced by test.sh and bench/remote.sh: installs moto's S3 server into the virtualenv
# $venv if missing, starts it on a free loopback port (stopped when the sourcing shell
# exits), creates the bucket $moto_bucket, and exports $moto_endpoint.
if [ ! -x "$venv/bin/moto_server" ]; then
  "$venv/bin/pip" install -q "moto[server]==5.2.5"
fi
moto_port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" > "${TMPDIR:-/tmp}/strata-moto-$moto_port.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
export moto_endpoint="http://127.0.0.1:$moto_port"
# Wait for the server, then create the bucket.
"$venv/bin/python" - "$moto_endpoint/$moto_bucket" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT"), timeout=2)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("moto's S3 server did not start")
PY
