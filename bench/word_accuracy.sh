#!/usr/bin/env bash
# Accuracy of the BiLSTM on real data over seeds, with a random embedding and with skip-gram
# vectors learned by fastText from the training rows (docs/word-embeddings.md).
#
#   bench/word_accuracy.sh --dataset ag_news --seeds "1 2 3" --impls "textscale pytorch"
#   bench/word_accuracy.sh --dataset imdb --seeds 1 --train-args "--pooling max --lr 0.001 --batch-size 64"
#
# Datasets (from --data / TEXTSCALE_DATA, default ../shared/data), preprocessed as jobs/main.sh
# does (words, 5% of the training rows held out for validation with seed 1):
#   ag_news: train = alps_train_sample/dev.tsv (10,001 AG News training rows), test = test.csv (7,600)
#   imdb:    train = train.csv.gz (25,000), test = test.csv.gz (25,000)
# Training: textscale train --model bilstm --optimizer adam --lr 0.002 --batch-size 128 --epochs 3
# --bucket-by-length true, less any of them --train-args sets, then --train-args; one process with
# --threads threads (a run on N ranks gives the same weights, to rounding). --impls pytorch also
# trains the PyTorch peer (bench/peer_train.py, bench/peer_word_models.py: the same architecture,
# U(-0.1, 0.1) embedding or the same vectors, the same rows, batches bucketed and cut to their
# longest row) with the same options (--train-args too); its runs resume from their last finished
# epoch when stopped. Each run's final test accuracy and the test accuracy of its best validation
# epoch go to the table. Runs go to WORK/<dataset>/[pytorch-]<init>-s<seed>/ (default WORK =
# runs/word-accuracy); a finished run is not repeated.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
dataset=ag_news seeds="1 2 3" inits="random skipgram" impls=textscale threads=2 work=$repo/runs/word-accuracy
data=${TEXTSCALE_DATA:-$repo/../shared/data} train_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dataset) dataset=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --inits) inits=$2; shift 2 ;;
    --impls) impls=$2; shift 2 ;;
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
# The defaults, less those --train-args sets (an option may be given once).
defaults=()
for pair in "--optimizer adam" "--lr 0.002" "--batch-size 128" "--epochs 3" "--bucket-by-length true"; do
  [[ " ${extra[*]} " == *" ${pair%% *} "* ]] || defaults+=($pair)
done
peer_defaults=()
for pair in "--optimizer adam" "--lr 0.002" "--batch-size 128" "--epochs 3"; do
  [[ " ${extra[*]} " == *" ${pair%% *} "* ]] || peer_defaults+=($pair)
done
peer_extra=()  # --train-args for the peer: its options have the same names, but flags take no value
for ((i = 0; i < ${#extra[@]}; i++)); do
  if [ "${extra[i]}" = --bucket-by-length ]; then
    [ "${extra[i + 1]}" = true ] && peer_extra+=(--bucket-by-length --truncate-batch)
    i=$((i + 1))
  else
    peer_extra+=("${extra[i]}")
  fi
done
[[ " ${extra[*]} " == *" --bucket-by-length "* ]] || peer_extra+=(--bucket-by-length --truncate-batch)
epochs=3
for ((i = 0; i < ${#extra[@]}; i++)); do [ "${extra[i]}" = --epochs ] && epochs=${extra[i + 1]}; done
for seed in $seeds; do
  for init in $inits; do
    for impl in $impls; do
      case "$impl" in
        textscale)
          run=$dir/$init-s$seed
          [ -f "$run/metrics.jsonl" ] && grep -q '"type":"final"' "$run/metrics.jsonl" && continue
          rm -rf "$run"
          vectors=()
          [ "$init" = skipgram ] && vectors=(--embeddings "$dir/vectors.vec")
          "$textscale" train --train "$dir/train.h5" --valid "$dir/train.valid.h5" --test "$dir/test.h5" \
            --model bilstm "${defaults[@]}" --seed "$seed" --threads "$threads" --progress off "${vectors[@]}" \
            "${extra[@]}" --run-dir "$run" > "$run.log" 2>&1 || echo "run $run failed: see $run.log" >&2 ;;
        pytorch)
          # Resumable: a stopped run goes on from its last finished epoch (--checkpoint).
          run=$dir/pytorch-$init-s$seed
          [ -f "$run/metrics.jsonl" ] && grep -q "\"epoch\": $epochs," "$run/metrics.jsonl" && continue
          mkdir -p "$run"
          vectors=(--embed-init uniform)
          [ "$init" = skipgram ] && vectors+=(--embed-from "$dir/vectors.vec")
          /usr/bin/python3 "$here/peer_train.py" --model bilstm --train "$dir/train.h5" --valid "$dir/train.valid.h5" \
            --test "$dir/test.h5" "${peer_defaults[@]}" --seed "$seed" --threads "$threads" "${vectors[@]}" \
            "${peer_extra[@]}" --checkpoint "$run/checkpoint.pt" --metrics "$run/metrics.jsonl" >> "$run.log" 2>&1 ||
            echo "run $run failed: see $run.log" >&2 ;;
        *) echo "unknown implementation $impl (textscale, pytorch)" >&2; exit 2 ;;
      esac
    done
  done
done
python3 - "$dir" "$impls" $inits <<'PY'
import glob, json, os, statistics, sys
folder, impls, inits = sys.argv[1], sys.argv[2].split(), sys.argv[3:]

def textscale_run(run):
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    final = [r for r in rows if r["type"] == "final"]
    if not final:
        return None
    best_epoch = final[0].get("best_epoch")
    best = next((r["test"]["accuracy"] for r in rows
                 if r["type"] == "epoch" and r["epoch"] == best_epoch and "test" in r), None)
    return final[0]["test"]["accuracy"], best_epoch, best

def pytorch_run(run):
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl")) if line.strip()]
    last = [r for r in rows if r.get("test_accuracy") is not None and "best_epoch" in r]
    if not last:
        return None
    return last[-1]["test_accuracy"], last[-1]["best_epoch"], last[-1]["best_test_accuracy"]

print("| implementation | embedding | seed | final test accuracy | best validation epoch | its test accuracy |")
print("|---|---|---|---|---|---|")
for impl in impls:
    for init in inits:
        prefix = init if impl == "textscale" else "pytorch-" + init
        finals, bests = [], []
        for run in sorted(glob.glob(os.path.join(folder, prefix + "-s*"))):
            if not os.path.isdir(run) or not os.path.exists(os.path.join(run, "metrics.jsonl")):
                continue
            result = (textscale_run if impl == "textscale" else pytorch_run)(run)
            if result is None:
                continue
            final, best_epoch, best = result
            finals.append(final)
            if best is not None:
                bests.append(best)
            print(f"| {impl} | {init} | {run.rsplit('-s', 1)[1]} | {final:.4f} | {best_epoch} | "
                  + (f"{best:.4f}" if best is not None else "–") + " |")
        if finals:
            print(f"| {impl} | {init} | mean of {len(finals)} | {statistics.mean(finals):.4f} | | "
                  + (f"{statistics.mean(bests):.4f}" if bests else "–") + " |")
PY
