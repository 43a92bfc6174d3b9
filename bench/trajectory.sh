#!/usr/bin/env bash
# Step-by-step comparison of textscale and PyTorch (bench/peer_train.py) on real data: both start
# from the same weights (a textscale checkpoint), visit the same rows in the same order (textscale's
# permutation for the seed) with the same optimiser, so the only differences left are dropout masks
# (none with --dropout 0, the default here) and floating-point rounding. Prints each step's training
# loss from both, and the relative difference of the final weights. A control run shows how fast
# rounding alone makes two runs part: textscale again with its direct convolutions instead of the
# Winograd ones (--winograd off), which changes nothing but the rounding.
#
#   bench/trajectory.sh --model crepe-small --steps 100 --batch 32 --optimizer adam --lr 0.001
#   bench/trajectory.sh --model vdcnn-9 --steps 100 --batch 32 --optimizer sgd --lr 0.01
#
# --start CHECKPOINT starts both from a trained checkpoint's weights (optimiser state fresh in both)
# instead of the seed's initialisation one step in: the same comparison where a long run spends its
# time, e.g. a final checkpoint of bench/accuracy.sh at its final learning rate.
#
# Data: AG News prepared by bench/accuracy.sh (its WORK/ag_news/{train,test}.h5; --data /
# TEXTSCALE_DATA, default ../shared/data). Runs go to --work (default runs/trajectory).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
model=crepe-small steps=100 batch=32 optimizer=adam lr=0.001 dropout=0 seed=1 threads=2
work=$repo/runs/trajectory data=${TEXTSCALE_DATA:-$repo/../shared/data} niceness=0 start=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --optimizer) optimizer=$2; shift 2 ;;
    --lr) lr=$2; shift 2 ;;
    --dropout) dropout=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --nice) niceness=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --start) start=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
textscale=${TEXTSCALE:-$repo/build/bin/textscale}
python=${PYTHON:-/usr/bin/python3}
"$here/accuracy.sh" --prepare-only --dataset ag_news --work "$work" --data "$data" > /dev/null
train=$work/ag_news/train.h5 test=$work/ag_news/test.h5
run=$work/$model-$optimizer-b$batch-s$seed-d$dropout${start:+-from-$(basename "$(dirname "$start")")}
rm -rf "$run"
mkdir -p "$run"
common=(--model "$model" --batch-size "$batch" --optimizer "$optimizer" --lr "$lr" --seed "$seed"
  --dropout "$dropout" --threads "$threads")
# The shared starting point: textscale's initialisation for the seed, one step in (or --start).
if [ -n "$start" ]; then
  [ -f "$start" ] || { echo "error: --start $start: no such checkpoint" >&2; exit 2; }
  mkdir -p "$run/start" && cp "$start" "$run/start/checkpoint.h5"
else
  nice -n "$niceness" "$textscale" train --train "$train" "${common[@]}" --epochs 1 --max-steps 1 \
    --test-each-epoch false --progress off --run-dir "$run/start" > "$run/start.log"
fi
epochs=$("$python" -c "import h5py; n = h5py.File('$train')['labels'].shape[0]; print(-(-$steps * $batch // n))")
nice -n "$niceness" "$textscale" train --train "$train" "${common[@]}" --epochs "$epochs" \
  --max-steps "$steps" --init-from "$run/start/checkpoint.h5" --log-every 1 --test-each-epoch false \
  --progress off --run-dir "$run/textscale" > "$run/textscale.log"
nice -n "$niceness" "$textscale" train --train "$train" "${common[@]}" --epochs "$epochs" \
  --max-steps "$steps" --init-from "$run/start/checkpoint.h5" --log-every 1 --test-each-epoch false \
  --progress off --run-dir "$run/control" --winograd off > "$run/control.log"
# Not a timed benchmark, but keep the peer's OpenBLAS at full speed.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE nice -n "$niceness" "$python" "$here/peer_train.py" \
  --train "$train" --test "$test" --limit-test 1 "${common[@]}" --epochs "$epochs" \
  --max-steps "$steps" --init-from "$run/start/checkpoint.h5" --order textscale --schedule constant \
  --test-each-epoch 0 --step-log "$run/pytorch-steps.jsonl" --save-weights "$run/pytorch-weights.npz" \
  > "$run/pytorch.log"
"$python" - "$run" <<'PY'
import json, sys
import h5py, numpy as np
run = sys.argv[1]
def steps_of(path):
    return {r["step"]: r["loss"] for r in map(json.loads, open(path)) if r.get("type", "interval") == "interval"}
ours, control = steps_of(f"{run}/textscale/metrics.jsonl"), steps_of(f"{run}/control/metrics.jsonl")
theirs = steps_of(f"{run}/pytorch-steps.jsonl")
steps = sorted(set(ours) & set(theirs) & set(control))
print("training loss per step; relative differences to textscale's")
print(f"{'step':>5} {'textscale':>10} {'pytorch':>10} {'rel diff':>9} {'control':>10} {'rel diff':>9}")
rel = lambda x, y: abs(x - y) / abs(y)
for s in steps:
    if s <= 10 or s % 10 == 0 or s == steps[-1]:
        print(f"{s:>5} {ours[s]:>10.5f} {theirs[s]:>10.5f} {rel(theirs[s], ours[s]):>9.1e} "
              f"{control[s]:>10.5f} {rel(control[s], ours[s]):>9.1e}")
mean = lambda d: np.mean([d[s] for s in steps])
print(f"mean training loss over {len(steps)} steps: textscale {mean(ours):.5f}, PyTorch {mean(theirs):.5f}, "
      f"control {mean(control):.5f}")
weights = np.load(f"{run}/pytorch-weights.npz")
with h5py.File(f"{run}/textscale/checkpoint.h5") as f, h5py.File(f"{run}/control/checkpoint.h5") as g:
    ref = {n: f["parameters"][n][...] for n in weights.files}
    norm = np.sqrt(sum(float((v ** 2).sum()) for v in ref.values()))
    distance = lambda other: np.sqrt(sum(float(((ref[n] - other[n]) ** 2).sum()) for n in ref)) / norm
    control_weights = {n: g["parameters"][n][...] for n in ref}
print(f"final weights, relative L2 distance to textscale's: PyTorch {distance(weights):.2e}, "
      f"control {distance(control_weights):.2e}")
with h5py.File(f"{run}/start/checkpoint.h5") as f:  # the same for the change since the start
    start = {n: f["parameters"][n][...] for n in ref}
update = lambda w: {n: w[n] - start[n] for n in ref}
ours_update = update(ref)
scale = np.sqrt(sum(float((v ** 2).sum()) for v in ours_update.values()))
update_distance = lambda w: np.sqrt(sum(float(((ours_update[n] - u) ** 2).sum()) for n, u in update(w).items())) / scale
print(f"change of the weights since the start, relative L2 distance to textscale's: "
      f"PyTorch {update_distance(weights):.2e}, control {update_distance(control_weights):.2e}")
PY
