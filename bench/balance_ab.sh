#!/usr/bin/env bash
# --balance against the even split, alternated on the same machine: 2 ranks x 1 thread under
# `mpirun --bind-to core`, global batch 128, AG News rows; each run trains 2K steps and the second
# K-step interval gives samples/s, the largest communication wait per step and the split.
# Alternating A and B runs spreads the host's drifts over both.
#
#   bench/balance_ab.sh [--models "crepe-small vdcnn-9"] [--reps 4] [--steps 12]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
models="crepe-small vdcnn-9" reps=4 steps=12
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
textscale=${TEXTSCALE:-$repo/build/bin/textscale}
python=${PYTHON:-/usr/bin/python3}
data=${TEXTSCALE_DATA:-$repo/../shared/data}
[ -f "$data/ag_news/alps_train_sample/dev.tsv" ] || { echo "SKIP: no AG News in $data" >&2; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$textscale" preprocess --input "$data/ag_news/alps_train_sample/dev.tsv" --format tsv --label-column 1 \
  --labels names --classes "$data/ag_news/classes.txt" --unescape backslash --no-words --output "$work/train.h5" > /dev/null
echo "| model | --balance | samples/s | comm wait ms/step (largest) | rows a rank |"
echo "|---|---|---:|---:|---|"
for model in $models; do
  for rep in $(seq 1 "$reps"); do
    for balance in false true; do
      run=$work/$model-$balance-$rep
      mpirun --bind-to core -np 2 "$textscale" train --train "$work/train.h5" --model "$model" --batch-size 128 \
        --threads 1 --max-steps $((2 * steps)) --log-every "$steps" --progress off --balance "$balance" \
        --run-dir "$run" > "$run.log" 2>&1 || { cat "$run.log" >&2; exit 1; }
      "$python" - "$run/metrics.jsonl" "$model" "$balance" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"interval"' in l][1]
rows = "/".join(map(str, r["rows_per_rank"])) if r.get("rows_per_rank") else "64/64"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['samples_per_second']:.1f} | {r['comm_wait_ms_per_step']:.1f} | {rows} |")
PY
    done
  done
done
