#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: install what is missing, build, preprocess AG News
# (a 10k-row training sample with a 5% validation split, and the official 7,600-row test split)
# into HDF5, train a word-level bidirectional LSTM on it data-parallel with `mpirun -np 2` (one
# rank per core) with progress, and print the test accuracy, per-class metrics and throughput.
# Data from ${TEXTSCALE_DATA:-../shared/data} (data/fetch.sh fetches it elsewhere); outputs in
# ${TEXTSCALE_RUN_DIR:-runs/main}. MODEL (bilstm; or a character CNN: crepe-small, vdcnn-9, ...),
# EPOCHS (3) and RANKS (2) choose the run. On 2 cores: bilstm about 15 s an epoch (0.88 on the
# test split, results/accuracy.md), VDCNN-9 about 2.5 minutes (0.59 after 3 epochs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data=${TEXTSCALE_DATA:-$root/../shared/data}
out=${TEXTSCALE_RUN_DIR:-$root/runs/main}
bash .ci/install-deps.sh
bash .ci/build.sh > "${TMPDIR:-/tmp}/textscale-build.log" 2>&1 || { cat "${TMPDIR:-/tmp}/textscale-build.log"; exit 1; }
textscale=$root/build/bin/textscale
if [ ! -f "$data/ag_news/test.csv" ]; then
  echo "error: AG News not found in '$data' (set TEXTSCALE_DATA, or run: data/fetch.sh ag_news)" >&2
  exit 1
fi
mkdir -p "$out"
"$textscale" --version
echo
echo "== AG News training sample (TSV, class names) -> $out/ag_train.h5 (+ 5% validation)"
"$textscale" preprocess --input "$data/ag_news/alps_train_sample/dev.tsv" --format tsv \
  --label-column 1 --labels names --classes "$data/ag_news/classes.txt" --unescape backslash \
  --shuffle --seed 1 --validation-fraction 0.05 --output "$out/ag_train.h5" --overwrite
echo
echo "== AG News test split (Zhang CSV), training vocabulary -> $out/ag_test.h5"
"$textscale" preprocess --input "$data/ag_news/test.csv" --format zhang --unescape backslash \
  --vocab-from "$out/ag_train.h5" --output "$out/ag_test.h5" --overwrite
echo
"$textscale" inspect "$out/ag_test.h5" --row 0
echo
model=${MODEL:-bilstm}
epochs=${EPOCHS:-3}
ranks=${RANKS:-2}
# One rank per core (threads per rank: the node's cores / ranks); Open MPI wants to be told that
# running as root is intended.
mpirun=(mpirun -np "$ranks" --bind-to core)
[ "$(nproc)" -ge "$ranks" ] || mpirun=(mpirun -np "$ranks" --oversubscribe --bind-to none)
[ "$(id -u)" != 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$("$textscale" models --json | python3 -c "import json,sys; print(next(json.loads(l).get('input', '') for l in sys.stdin if json.loads(l)['name'] == '$model'))")" = words ]; then
  # Word models: Adam, batches of rows of similar length (each computed up to its longest row).
  training=(--optimizer adam --lr 0.002 --bucket-by-length true)
  echo "== Training $model for $epochs epochs on $ranks ranks (Adam, lr 0.002, global batch 128, rows bucketed by length)"
else
  training=(--schedule step)
  echo "== Training $model for $epochs epochs on $ranks ranks (SGD, momentum 0.9, lr 0.01 halved every 3 epochs," \
    "global batch 128)"
fi
rm -rf "$out/run-$model"
"${mpirun[@]}" "$textscale" train --train "$out/ag_train.h5" --valid "$out/ag_train.valid.h5" --test "$out/ag_test.h5" \
  --model "$model" --epochs "$epochs" "${training[@]}" --test-each-epoch false --run-dir "$out/run-$model"
echo
echo "== The best validation checkpoint on the test split"
"$textscale" evaluate --checkpoint "$out/run-$model/best.h5" --data "$out/ag_test.h5"
echo
echo "== The same checkpoint on the raw test CSV (textscale predict: no preprocessing step; 2 ranks)"
"${mpirun[@]}" "$textscale" predict --checkpoint "$out/run-$model/best.h5" --input "$data/ag_news/test.csv" \
  --input-format zhang --top-k 2 --output "$out/ag_test_predictions.csv" --overwrite --progress off
head -n 4 "$out/ag_test_predictions.csv"
