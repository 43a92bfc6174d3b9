#!/usr/bin/env bash
# Data-parallel training on GPUs over NCCL (needs 2 GPUs and mpirun; skipped otherwise): test_nccl
# on 2 ranks (TEXTSCALE_TEST_NCCL), then 2 ranks
# with one GPU each give the weights of 1 GPU with the same global batch, to 1e-4 (fp32 products;
# the two differ in summation order only), and the bucketed, overlapped reduction equals one
# bucket after backward to the same bound.
source "$(dirname "$0")/../cli/lib.sh"
DATA=${TEXTSCALE_DATA:-$TEXTSCALE_SOURCE_DIR/../shared/data}
if [ ! -f "$DATA/ag_news/alps_train_sample/dev.tsv" ]; then
  echo "SKIP: no AG News in '$DATA' (set TEXTSCALE_DATA)"
  exit 77
fi
command -v mpirun > /dev/null || { echo "SKIP: no mpirun"; exit 77; }
gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU' || true)
if [ "${gpus:-0}" -lt 2 ]; then
  echo "SKIP: this test needs 2 GPUs ($gpus visible)"
  exit 77
fi
cd "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# The communicator's own test on 2 ranks, where its sums differ from a no-op's.
if [ -n "${TEXTSCALE_TEST_NCCL:-}" ]; then
  mpirun --oversubscribe -np 2 "$TEXTSCALE_TEST_NCCL" > nccl.log 2>&1 ||
    { fail "test_nccl on 2 ranks failed"; tail -20 nccl.log >&2; }
fi
ag_news_subset "$DATA" 700 203
common=(--device cuda --precision fp32 --train train.h5 --test test.h5 --model vdcnn-9 --batch-size 32
  --limit-train 320 --epochs 1 --lr 0.01 --log-every 5 --progress off --sync-bn true)
mpirun --oversubscribe -np 1 "$TEXTSCALE_BIN" train "${common[@]}" --run-dir one > one.log 2>&1 ||
  { fail "1 GPU run failed"; tail -20 one.log >&2; }
mpirun --oversubscribe -np 2 "$TEXTSCALE_BIN" train "${common[@]}" --run-dir two > two.log 2>&1 ||
  { fail "2 GPU run failed"; tail -20 two.log >&2; }
mpirun --oversubscribe -np 2 "$TEXTSCALE_BIN" train "${common[@]}" --bucket-mb 0 --run-dir single > single.log 2>&1 ||
  { fail "2 GPU run (one bucket) failed"; tail -20 single.log >&2; }
grep -q "ranks (nccl)" two.log || fail "the 2-rank run did not reduce over NCCL"
for run in two single; do
  h5diff -d 1e-4 one/checkpoint.h5 "$run/checkpoint.h5" /parameters /parameters > diff.txt 2>&1 ||
    { fail "1 GPU vs $run: parameters differ by more than 1e-4"; head -5 diff.txt >&2; }
done
finish
