#!/usr/bin/env bash
# The word models on real data (AG News rows from TEXTSCALE_DATA, default ../shared/data), small:
# - a tiny bilstm learns (the loss halves), with and without --bucket-by-length; `evaluate`
#   reproduces the trainer's final test accuracy;
# - a run stopped by --max-steps and resumed ends with bitwise the same parameters and optimizer
#   state as an uninterrupted one (bucketed, dropout on);
# - 2 ranks give the weights of 1 rank with the same global batch, to 1e-5 (the all-reduce sums in
#   another order), bucketed too, and with --embedding-update lazy; so do gradient accumulation
#   (--accumulate) on 1 and 2 ranks;
# - --embeddings: fastText vectors learned from the training rows' tokens start the table (frozen:
#   kept exactly);
# - refusals: a test file with another vocabulary, --bucket-by-length for a character model, a
#   word model on a file preprocessed with --no-words.
source "$(dirname "$0")/../cli/lib.sh"
DATA=${TEXTSCALE_DATA:-$TEXTSCALE_SOURCE_DIR/../shared/data}
if [ ! -f "$DATA/ag_news/alps_train_sample/dev.tsv" ]; then
  echo "SKIP: no AG News in '$DATA' (set TEXTSCALE_DATA to a folder laid out like ../shared/data)"
  exit 77
fi
cd "$WORK"
export OMP_NUM_THREADS=2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none)

head -n 1200 "$DATA/ag_news/alps_train_sample/dev.tsv" > train.tsv
head -n 400 "$DATA/ag_news/test.csv" > test.csv
cp "$DATA/ag_news/classes.txt" classes.txt
run_ts 0 preprocess --input train.tsv --format tsv --label-column 1 --labels names --classes classes.txt \
  --unescape backslash --word-length 64 --output train.h5
run_ts 0 preprocess --input test.csv --format zhang --unescape backslash --classes classes.txt \
  --vocab-from train.h5 --output test.h5
# The same rows with a vocabulary of their own, and without word tensors.
run_ts 0 preprocess --input test.csv --format zhang --unescape backslash --classes classes.txt --word-length 64 \
  --output test-own-vocab.h5
run_ts 0 preprocess --input test.csv --format zhang --unescape backslash --classes classes.txt --no-words \
  --output test-chars.h5

final_accuracy() { py -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; print('%.4f' % r['test']['accuracy'])" "$1/metrics.jsonl"; }

tiny=(--model bilstm --embed-dim 16 --hidden 12 --optimizer adam --lr 0.01 --log-every 4)

# --- The loss falls; evaluate agrees -------------------------------------------------------------
for bucket in false true; do
  run_ts 0 train --train train.h5 --test test.h5 "${tiny[@]}" --batch-size 32 --epochs 6 --bucket-by-length "$bucket" \
    --run-dir "learn-$bucket" --progress off
  read -r first last <<< "$(losses "learn-$bucket")"
  py -c "import sys; sys.exit(0 if $last < 0.5 * $first else 1)" ||
    fail "tiny bilstm (bucketing $bucket): loss $first -> $last did not halve"
done
expect_in "$WORK/out" "bidirectional lstm 16->12"
run_ts 0 evaluate --checkpoint learn-true/checkpoint.h5 --data test.h5
expect_in "$WORK/out" "accuracy $(final_accuracy learn-true)"
echo "tiny bilstm learns: checked"

# --- Resume is bitwise ------------------------------------------------------------------------------
cut=(--train train.h5 --test test.h5 "${tiny[@]}" --batch-size 32 --dropout 0.3 --bucket-by-length true --epochs 2 --progress off)
run_ts 0 train "${cut[@]}" --run-dir full
run_ts 0 train "${cut[@]}" --run-dir cut --max-steps 13
run_ts 0 train --train train.h5 --resume cut/checkpoint.h5
same_state full/checkpoint.h5 cut/checkpoint.h5 "bilstm resumed" "/parameters /optimizer"
echo "bilstm resume: bitwise"

# --- 1 vs 2 ranks ---------------------------------------------------------------------------------
if command -v mpirun > /dev/null; then
  for run in "false dense" "true dense" "true lazy"; do
    read -r bucket update <<< "$run"
    # SGD: Adam divides each step by the root of the gradient's second moment, so an element whose
    # gradients are near 0 (an embedding row of a word seen once) moves by up to lr whatever their
    # rounding; SGD keeps the two runs' differences at the size of the all-reduce's rounding.
    ranks=(--train train.h5 --model bilstm --embed-dim 16 --hidden 12 --optimizer sgd --lr 0.1 --batch-size 22
      --limit-train 300 --epochs 2 --threads 1 --progress off --bucket-by-length "$bucket" --embedding-update "$update")
    run_ts 0 train "${ranks[@]}" --run-dir "one-$bucket-$update"
    "${MPIRUN[@]}" -np 2 "$TEXTSCALE_BIN" train "${ranks[@]}" --run-dir "two-$bucket-$update" > "two.log" 2>&1 ||
      { fail "mpirun -np 2 failed"; tail -20 "two.log" >&2; }
    # Gradient accumulation sums the same rows' gradients in parts, as the ranks do: 1 process in 3
    # micro-batches (22 rows: 8, 8, 6), 2 ranks in 2 each (11 rows: 6, 5); the row-sparse
    # embedding gradient of the micro-batches' union of words.
    run_ts 0 train "${ranks[@]}" --accumulate 3 --run-dir "acc-$bucket-$update"
    "${MPIRUN[@]}" -np 2 "$TEXTSCALE_BIN" train "${ranks[@]}" --accumulate 2 --run-dir "two-acc-$bucket-$update" \
      > "two.log" 2>&1 || { fail "mpirun -np 2 --accumulate 2 failed"; tail -20 "two.log" >&2; }
    for other in "two-$bucket-$update" "acc-$bucket-$update" "two-acc-$bucket-$update"; do
      for group in /parameters /optimizer; do
        h5diff -d 1e-5 "one-$bucket-$update/checkpoint.h5" "$other/checkpoint.h5" "$group" "$group" > diff.txt 2>&1 || {
          fail "bilstm, $other against 1 rank (bucketing $bucket, $update embedding update): $group differ by more than 1e-5"
          head -5 diff.txt >&2
        }
      done
    done
  done
  # The lazy update leaves the rows of words not in a batch (and their velocity) alone: it ends
  # elsewhere than the dense one.
  h5diff -q one-true-dense/checkpoint.h5 one-true-lazy/checkpoint.h5 /parameters/input.table \
    /parameters/input.table > /dev/null 2>&1 && fail "--embedding-update lazy changed nothing"
  echo "bilstm 1 vs 2 ranks, and accumulated: equal to 1e-5"
else
  echo "no mpirun: 1 vs 2 ranks not checked"
fi

# --- Pretrained vectors ---------------------------------------------------------------------------
# The recipe of docs/word-embeddings.md: the training rows' tokens, fastText skip-gram vectors,
# train --embeddings. Frozen, the checkpoint's table holds the file's vectors exactly (and the rows
# of words the file lacks their random start); trained, the vectors move.
if command -v fasttext > /dev/null; then
  run_ts 0 tokens --data train.h5 --output tokens.txt
  fasttext skipgram -input tokens.txt -output vectors -dim 16 -minCount 1 -epoch 1 -thread 2 > /dev/null 2>&1 ||
    fail "fasttext skipgram failed"
  for frozen in true false; do
    run_ts 0 train --train train.h5 "${tiny[@]}" --batch-size 32 --epochs 1 --embeddings vectors.vec \
      --freeze-embeddings "$frozen" --run-dir "vectors-$frozen" --progress off
    expect_in "$WORK/out" "embeddings vectors.vec: 16-d"
  done
  py - vectors-true/checkpoint.h5 vectors-false/checkpoint.h5 train.h5 vectors.vec <<'PY' || fail "--embeddings: the table does not hold the vectors"
import sys, h5py, numpy as np
frozen = h5py.File(sys.argv[1], "r")["state/input.table"][()]
trained = h5py.File(sys.argv[2], "r")["parameters/input.table"][()]
vocab = [w.decode() if isinstance(w, bytes) else w for w in h5py.File(sys.argv[3], "r")["vocab"][()]]
index = {w: i for i, w in enumerate(vocab)}
lines = open(sys.argv[4], encoding="utf-8").read().split("\n")[1:]
seen = 0
for line in lines:
    parts = line.rstrip(" ").split(" ")
    if len(parts) < 2 or parts[0] not in index or index[parts[0]] == 0:
        continue
    row = index[parts[0]]
    assert np.array_equal(frozen[row], np.array(parts[1:], dtype=np.float32)), parts[0]
    seen += 1
assert seen > 0.9 * (len(vocab) - 2), (seen, len(vocab))
assert not np.array_equal(frozen, trained), "training did not move the vectors"
PY
  run_ts 2 train --train train.h5 --model crepe-small --features 8 --fc 16 --epochs 1 --embeddings vectors.vec \
    --run-dir refused
  expect_in "$WORK/err" "--embeddings: model crepe-small reads characters, not words"
  run_ts 1 train --train train.h5 --model bilstm --embed-dim 8 --hidden 4 --epochs 1 --embeddings vectors.vec \
    --run-dir refused
  expect_in "$WORK/err" "vectors.vec"
  echo "pretrained vectors: checked"
else
  echo "no fasttext: pretrained vectors not checked"
fi

# --- Refusals -------------------------------------------------------------------------------------
run_ts 1 evaluate --checkpoint learn-true/checkpoint.h5 --data test-own-vocab.h5
expect_in "$WORK/err" "test-own-vocab.h5 does not match learn-true/checkpoint.h5: vocabulary"
run_ts 1 train --train train.h5 --test test-own-vocab.h5 "${tiny[@]}" --epochs 1 --run-dir refused
expect_in "$WORK/err" "test-own-vocab.h5 does not match train.h5: vocabulary"
run_ts 1 evaluate --checkpoint learn-true/checkpoint.h5 --data test-chars.h5
expect_in "$WORK/err" "test-chars.h5"
expect_in "$WORK/err" "word"
run_ts 2 train --train train.h5 --model crepe-small --features 8 --fc 16 --epochs 1 --bucket-by-length true \
  --run-dir refused
expect_in "$WORK/err" "--bucket-by-length: model crepe-small reads character rows of one length"
run_ts 2 train --train train.h5 --model crepe-small --hidden 5 --epochs 1 --run-dir refused
expect_in "$WORK/err" "--hidden is not an option of model crepe-small"
echo "refusals: checked"
finish
