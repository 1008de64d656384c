# Sourced by the bench scripts: resolves DATASET (a name under ../shared/data, or a
# directory with *_base.fvecs, *_query.fvecs, *_groundtruth.ivecs) into $dir $name
# $base $query $gt and the set's $metric, and finds the peers' Python in $py (unless
# the script sets NO_PEERS=1 first).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${STRATA_SHARED:-$root/../shared}
case "$ds" in
  /*|./*|../*) dir=$ds ;;
  *) dir=$shared/data/$ds ;;
esac
name=$(basename "$dir")
base=$(ls "$dir"/*_base.fvecs)
query=$(ls "$dir"/*_query.fvecs)
gt=$(ls "$dir"/*_groundtruth.ivecs)
metric=l2
case "$name" in glove-50|manpages-minilm-384) metric=cosine ;; esac
py=${PEERS_PY:-$HOME/.cache/strata-peers/venv/bin/python}
[ -n "${NO_PEERS:-}" ] || [ -x "$py" ] || { echo "peers venv missing: run $shared/peers/setup.sh" >&2; exit 1; }
