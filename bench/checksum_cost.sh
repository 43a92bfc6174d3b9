#!/usr/bin/env bash
# The cost of checksums: saving and loading a crepe-large checkpoint (build/bench/checkpoint_io:
# the tensors' SHA-256 against the whole save and load), and preprocessing AG News's test split
# with Fletcher-32, against a baseline build without it, runs interleaved.
#
#   bench/checksum_cost.sh [BASELINE_TEXTSCALE] [REPEATS]
# Environment: TEXTSCALE_BIN (default build/bin/textscale), TEXTSCALE_DATA (default ../shared/data).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${TEXTSCALE_BIN:-$root/build/bin/textscale}
data=${TEXTSCALE_DATA:-$root/../shared/data}
baseline=${1:-}
repeats=${2:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/checksum-cost.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$root/build/bench/checkpoint_io" --model crepe-large --repeats "$repeats" --folder "$work"

# AG News test (7600 rows) written through HDF5, and 16 copies of it shuffled (121,600 rows,
# 124 MB of chars: preallocated chunks written around HDF5).
for i in $(seq 16); do cat "$data/ag_news/test.csv"; done > "$work/ag16.csv"
run() {  # run BINARY INPUT EXTRA...: seconds of one preprocess
  local binary=$1 input=$2 start
  shift 2
  start=$(date +%s.%N)
  "$binary" preprocess --input "$input" --format zhang --unescape backslash --classes "$data/ag_news/classes.txt" \
    --output "$work/out.h5" --overwrite --threads 2 "$@" > /dev/null
  echo "$(date +%s.%N) - $start" | bc
}
for case in "test.csv" "ag16.csv --no-words --shuffle --seed 1"; do
  set -- $case
  input=$1
  shift
  [ "$input" = test.csv ] && input=$data/ag_news/test.csv || input=$work/$input
  for r in $(seq "$repeats"); do
    echo "preprocess $case: with Fletcher-32 $(run "$bin" "$input" "$@") s" \
      "${baseline:+, baseline $(run "$baseline" "$input" "$@") s}"
  done
done
