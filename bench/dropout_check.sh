#!/usr/bin/env bash
# Does textscale's dropout train the same model as PyTorch's? Dropout masks come from each
# implementation's own generator, so two runs with dropout cannot agree step by step
# (bench/trajectory.sh compares them without it). What must agree is the distribution: at fixed
# weights, the expected training-mode loss over the same batches. Both implementations start from
# one checkpoint, visit the same rows (textscale's order for --seed) with a learning rate of 1e-12
# (the weights do not move), and log each batch's loss with dropout (--dropout, default 0.5) and
# without (the control: there the two must agree to rounding). Prints the mean loss of each and
# the mean of the per-batch differences with its standard error.
#
#   bench/dropout_check.sh --checkpoint runs/accuracy-b32/ag_news/textscale-crepe-small-s1/checkpoint.h5 \
#       --model crepe-small --steps 60 --batch 32
#
# Data: AG News prepared by bench/accuracy.sh (WORK/ag_news/{train,test}.h5; --data /
# TEXTSCALE_DATA, default ../shared/data). Runs go to --work (default runs/dropout-check).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
checkpoint="" model=crepe-small steps=60 batch=32 dropout=0.5 seed=7 threads=1
work=$repo/runs/dropout-check data=${TEXTSCALE_DATA:-$repo/../shared/data}
while [ $# -gt 0 ]; do
  case "$1" in
    --checkpoint) checkpoint=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --dropout) dropout=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -f "$checkpoint" ] || { echo "error: --checkpoint FILE (a textscale checkpoint of --model) is required" >&2; exit 2; }
textscale=${TEXTSCALE:-$repo/build/bin/textscale}
python=${PYTHON:-/usr/bin/python3}
"$here/accuracy.sh" --prepare-only --dataset ag_news --work "$work" --data "$data" > /dev/null
train=$work/ag_news/train.h5 test=$work/ag_news/test.h5
epochs=$("$python" -c "import h5py; n = h5py.File('$train')['labels'].shape[0]; print(-(-$steps * $batch // n))")
common=(--model "$model" --batch-size "$batch" --optimizer sgd --lr 1e-12 --momentum 0 --seed "$seed"
  --threads "$threads" --epochs "$epochs" --max-steps "$steps" --init-from "$checkpoint")
for rate in "$dropout" 0; do
  rm -rf "$work/textscale-d$rate"
  "$textscale" train --train "$train" "${common[@]}" --dropout "$rate" --log-every 1 --test-each-epoch false \
    --progress off --run-dir "$work/textscale-d$rate" > "$work/textscale-d$rate.log"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$here/peer_train.py" --train "$train" --test "$test" \
    --limit-test 1 "${common[@]}" --dropout "$rate" --order textscale --test-each-epoch 0 \
    --step-log "$work/pytorch-d$rate.jsonl" > "$work/pytorch-d$rate.log"
done
"$python" - "$work" "$dropout" <<'EOF'
import json, math, sys
work, rate = sys.argv[1], sys.argv[2]
for r in (rate, "0"):
    records = [json.loads(l) for l in open(f"{work}/textscale-d{r}/metrics.jsonl")]
    ours = [x["loss"] for x in records if x.get("type") == "interval"]
    peer = [json.loads(l)["loss"] for l in open(f"{work}/pytorch-d{r}.jsonl")]
    if len(ours) != len(peer) or not ours:
        sys.exit(f"error: {len(ours)} textscale steps against {len(peer)} PyTorch steps")
    diff = [a - b for a, b in zip(ours, peer)]
    mean = sum(diff) / len(diff)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diff) / max(len(diff) - 1, 1))
    print(f"dropout {r}: {len(diff)} batches, mean loss textscale {sum(ours) / len(ours):.4f}, "
          f"PyTorch {sum(peer) / len(peer):.4f}; textscale - PyTorch {mean:+.4f} "
          f"(standard error {sd / math.sqrt(len(diff)):.4f})")
EOF
