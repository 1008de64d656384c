#!/usr/bin/env bash
# The disk's own random-read limit, for figures measured under a memory cap to stand
# beside: 4 KiB random reads with O_DIRECT (no page cache) at queue depth 1 and 32,
# through `fio` (Debian package `fio`).
#
#   bench/disk_limit.sh [DIR] [SECONDS]
#     DIR      a directory on the disk the stores live on (default: /tmp)
#     SECONDS  run time of each job (default: 15)
#
# Prints one line per depth: IOPS, mean and p99 latency. The 2 GiB test file is removed.
set -euo pipefail
dir=${1:-/tmp}
secs=${2:-15}
command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)" >&2; exit 1; }
file=$dir/strata-disk-limit.$$
trap 'rm -f "$file"' EXIT
for depth in 1 32; do
  fio --name=randread --filename="$file" --rw=randread --bs=4k --direct=1 \
    --ioengine=libaio --iodepth="$depth" --size=2G --runtime="$secs" --time_based \
    --output-format=json >"$file.json" 2>/dev/null
  python3 - "$file.json" "$depth" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]["read"]
lat = job["clat_ns"]
p99 = lat.get("percentile", {}).get("99.000000", 0)
print(f"queue depth {sys.argv[2]:>2}: {job['iops']:>9,.0f} IOPS, mean {lat['mean'] / 1000:.1f} us, p99 {p99 / 1000:.1f} us")
PY
  rm -f "$file.json"
done
