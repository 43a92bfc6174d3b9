#!/usr/bin/env bash
# Accuracy of the BiLSTM on real data over seeds, with a random embedding and with skip-gram
# vectors learned by fastText from the training rows (docs/word-embeddings.md).
#
#   bench/word_accuracy.sh --dataset ag_news --seeds "1 2 3"
#   bench/word_accuracy.sh --dataset imdb --seeds 1 --train-args "--pooling max --lr 0.001 --batch-size 64"
#
# Datasets (from --data / TEXTSCALE_DATA, default ../shared/data), preprocessed as jobs/main.sh
# does (words, 5% of the training rows held out for validation with seed 1):
#   ag_news: train = alps_train_sample/dev.tsv (10,001 AG News training rows), test = test.csv (7,600)
#   imdb:    train = train.csv.gz (25,000), test = test.csv.gz (25,000)
# Training: textscale train --model bilstm --optimizer adam --lr 0.002 --batch-size 128 --epochs 3
# --bucket-by-length true, then --train-args (appended: later options win); one process with
# --threads threads (a run on N ranks gives the same weights, to rounding). Each run's final test
# accuracy and the test accuracy of its best validation epoch (best.h5) go to the table. Runs go
# to WORK/<dataset>/<init>-s<seed>/ (default WORK = runs/word-accuracy); a finished run is not
# repeated.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
dataset=ag_news seeds="1 2 3" inits="random skipgram" threads=2 work=$repo/runs/word-accuracy
data=${TEXTSCALE_DATA:-$repo/../shared/data} train_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dataset) dataset=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --inits) inits=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --train-args) train_args=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
textscale=${TEXTSCALE:-$repo/build/bin/textscale}
dir=$work/$dataset
mkdir -p "$dir"
split=(--shuffle --seed 1 --validation-fraction 0.05)
case "$dataset" in
  ag_news)
    [ -f "$dir/train.h5" ] || "$textscale" preprocess --input "$data/ag_news/alps_train_sample/dev.tsv" --format tsv \
      --label-column 1 --labels names --classes "$data/ag_news/classes.txt" --unescape backslash "${split[@]}" \
      --output "$dir/train.h5" > /dev/null
    [ -f "$dir/test.h5" ] || "$textscale" preprocess --input "$data/ag_news/test.csv" --format zhang \
      --unescape backslash --vocab-from "$dir/train.h5" --output "$dir/test.h5" > /dev/null ;;
  imdb)
    [ -f "$dir/train.h5" ] || "$textscale" preprocess --input "$data/imdb/train.csv.gz" --format zhang "${split[@]}" \
      --output "$dir/train.h5" > /dev/null
    [ -f "$dir/test.h5" ] || "$textscale" preprocess --input "$data/imdb/test.csv.gz" --format zhang \
      --vocab-from "$dir/train.h5" --output "$dir/test.h5" > /dev/null ;;
  *) echo "unknown dataset $dataset (ag_news, imdb)" >&2; exit 2 ;;
esac
if [[ " $inits " == *" skipgram "* ]] && [ ! -f "$dir/vectors.vec" ]; then
  "$textscale" tokens --data "$dir/train.h5" --output "$dir/tokens.txt"
  fasttext skipgram -input "$dir/tokens.txt" -output "$dir/vectors" -dim 200 -minCount 1 -epoch 5 \
    -thread "$threads" > /dev/null
fi
read -r -a extra <<< "$train_args"
for seed in $seeds; do
  for init in $inits; do
    run=$dir/$init-s$seed
    [ -f "$run/metrics.jsonl" ] && grep -q '"type":"final"' "$run/metrics.jsonl" && continue
    rm -rf "$run"
    vectors=()
    [ "$init" = skipgram ] && vectors=(--embeddings "$dir/vectors.vec")
    "$textscale" train --train "$dir/train.h5" --valid "$dir/train.valid.h5" --test "$dir/test.h5" --model bilstm \
      --optimizer adam --lr 0.002 --batch-size 128 --epochs 3 --bucket-by-length true --seed "$seed" \
      --threads "$threads" --progress off "${vectors[@]}" "${extra[@]}" --run-dir "$run" > "$run.log" 2>&1 ||
      echo "run $run failed: see $run.log" >&2
  done
done
python3 - "$dir" $inits <<'PY'
import glob, json, os, statistics, sys
folder, inits = sys.argv[1], sys.argv[2:]
print("| embedding | seed | final test accuracy | best validation epoch | its test accuracy |")
print("|---|---|---|---|---|")
for init in inits:
    finals, bests = [], []
    for run in sorted(glob.glob(os.path.join(folder, init + "-s*"))):
        if not os.path.isdir(run):
            continue
        rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
        final = [r for r in rows if r["type"] == "final"]
        if not final:
            continue
        f = final[0]
        best_epoch = f.get("best_epoch")
        best = next((r["test"]["accuracy"] for r in rows if r["type"] == "epoch" and r["epoch"] == best_epoch and "test" in r), None)
        finals.append(f["test"]["accuracy"])
        if best is not None:
            bests.append(best)
        print(f"| {init} | {run.rsplit('-s', 1)[1]} | {f['test']['accuracy']:.4f} | {best_epoch} | "
              + (f"{best:.4f}" if best is not None else "–") + " |")
    if finals:
        print(f"| {init} | mean | {statistics.mean(finals):.4f} | | "
              + (f"{statistics.mean(bests):.4f}" if bests else "–") + " |")
PY
