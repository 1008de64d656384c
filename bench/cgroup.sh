#!/usr/bin/env bash
# Runs `strata bench --reuse` on an already built store inside a cgroup-v1 memory cgroup
# whose limit (page cache included) is LIMIT_MB, after dropping the page cache, so the
# store must work from disk. Needs root and the v1 memory controller.
#
#   bench/cgroup.sh LIMIT_MB STORE_DIR -- <strata bench arguments without --dir/--reuse>
#
# Prints the bench table, then the cgroup's peak usage and how often it hit the limit.
# With PERF_STAT=1 the run is wrapped in `perf stat` (major/minor page faults, CPU time
# against wall time: the difference is time spent waiting for the disk).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
limit_mb=${1:?usage: bench/cgroup.sh LIMIT_MB STORE_DIR -- bench args}
store=${2:?usage: bench/cgroup.sh LIMIT_MB STORE_DIR -- bench args}
shift 2
[ "${1:-}" = "--" ] && shift
mem=/sys/fs/cgroup/memory
[ -d "$mem" ] || { echo "no cgroup v1 memory controller at $mem" >&2; exit 1; }
cg=$mem/strata-bench-$$
mkdir "$cg"
trap 'rmdir "$cg" 2>/dev/null || true' EXIT
echo $((limit_mb * 1024 * 1024)) > "$cg/memory.limit_in_bytes"
sync
echo 3 > /proc/sys/vm/drop_caches
bin=$root/target/release/strata
wrap=""
[ "${PERF_STAT:-0}" = 1 ] && wrap="perf stat -e major-faults,minor-faults,task-clock --"
sh -c "echo \$\$ > $cg/cgroup.procs && exec $wrap $bin bench --dir $store --reuse $*"
echo "cgroup limit ${limit_mb} MiB: peak usage $(( $(cat "$cg/memory.max_usage_in_bytes") / 1048576 )) MiB, limit hit $(cat "$cg/memory.failcnt") times"
