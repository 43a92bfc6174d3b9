#!/usr/bin/env bash
# Accuracy against the global batch, for choosing a data-parallel configuration that still trains
# well (results/scaling.md): the BiLSTM on IMDB with docs/word-models.md's recipe (skip-gram
# vectors learned by fastText from the training rows, frozen; max pooling; Adam; 4 epochs;
# batches bucketed by length) at global batches 128 ... 4096. The learning rate scales linearly
# from --base-lr at batch 128 (--lr-scaling linear --lr-base-batch 128) and warms up over one
# epoch's steps (Goyal et al. 2017). One process a run (N ranks, or --accumulate, give the same
# weights to rounding). Prints, for each batch, the test accuracy of every seed (the final weights,
# and the epoch with the best validation accuracy), their mean and standard error, and the
# difference from batch 128; finished runs are kept and not repeated (WORK/b<batch>-s<seed>).
#
#   bench/batch_accuracy.sh [--batches "128 256 512 1024 2048 4096"] [--seeds "1 2 3"] [--base-lr 0.001]
#                           [--epochs 4] [--threads 2] [--work runs/batch-accuracy] [--train-args "..."]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
batches="128 256 512 1024 2048 4096" seeds="1 2 3" base_lr=0.001 epochs=4 threads=2 train_args=""
work=$repo/runs/batch-accuracy data=${TEXTSCALE_DATA:-$repo/../shared/data}
while [ $# -gt 0 ]; do
  case "$1" in
    --batches) batches=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --base-lr) base_lr=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --train-args) train_args=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
textscale=${TEXTSCALE:-$repo/build/bin/textscale}
[ -f "$data/imdb/train.csv.gz" ] || { echo "SKIP: no IMDB in $data" >&2; exit 77; }
mkdir -p "$work"
[ -f "$work/train.h5" ] || "$textscale" preprocess --input "$data/imdb/train.csv.gz" --format zhang --shuffle --seed 1 \
  --validation-fraction 0.05 --output "$work/train.h5" > /dev/null
[ -f "$work/test.h5" ] || "$textscale" preprocess --input "$data/imdb/test.csv.gz" --format zhang \
  --vocab-from "$work/train.h5" --output "$work/test.h5" > /dev/null
if [ ! -f "$work/vectors.vec" ]; then
  "$textscale" tokens --data "$work/train.h5" --output "$work/tokens.txt"
  fasttext skipgram -input "$work/tokens.txt" -output "$work/vectors" -dim 200 -minCount 1 -epoch 5 \
    -thread "$threads" > "$work/fasttext.log" 2>&1
fi
rows=$("$textscale" inspect "$work/train.h5" | grep -o '[0-9]* rows' | head -1 | grep -o '[0-9]*')
read -r -a extra <<< "$train_args"
for batch in $batches; do
  for seed in $seeds; do
    run=$work/b$batch-s$seed
    grep -q '"type":"final"' "$run/metrics.jsonl" 2> /dev/null && continue
    rm -rf "$run"
    "$textscale" train --train "$work/train.h5" --valid "$work/train.valid.h5" --test "$work/test.h5" --model bilstm \
      --embeddings "$work/vectors.vec" --freeze-embeddings true --pooling max --optimizer adam --lr "$base_lr" \
      --lr-scaling linear --lr-base-batch 128 --batch-size "$batch" --warmup-steps $(((rows + batch - 1) / batch)) \
      --epochs "$epochs" --bucket-by-length true --seed "$seed" --threads "$threads" --progress off \
      "${extra[@]}" --run-dir "$run" > "$run.log" 2>&1 || { echo "batch $batch seed $seed failed: $run.log" >&2; exit 1; }
  done
done
/usr/bin/python3 - "$work" "$batches" "$seeds" "$base_lr" <<'PY'
import json, math, statistics, sys
work, batches, seeds, base_lr = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), float(sys.argv[4])
def accuracies(run):
    records = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
    epochs = [r for r in records if r["type"] == "epoch" and "valid" in r and "test" in r]
    best = max(epochs, key=lambda r: r["valid"]["accuracy"])["test"]["accuracy"] if epochs else float("nan")
    return records[-1]["test"]["accuracy"], best
def summary(values):
    mean = statistics.mean(values)
    error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return mean, error
print("| global batch | lr | seeds: final (best validation epoch) | mean final | standard error | vs batch "
      f"{batches[0]} |")
print("|---:|---:|---|---:|---:|---:|")
base = None
for batch in batches:
    runs = [accuracies(f"{work}/b{batch}-s{seed}") for seed in seeds]
    mean, error = summary([final for final, _ in runs])
    base = mean if base is None else base
    cells = ", ".join(f"{final:.4f} ({best:.4f})" for final, best in runs)
    print(f"| {batch} | {base_lr * int(batch) / 128:g} | {cells} | {mean:.4f} | {error:.4f} | {100 * (mean - base):+.2f} pt |")
PY
