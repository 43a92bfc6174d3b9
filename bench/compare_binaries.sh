#!/usr/bin/env bash
# Speed of two textscale binaries side by side: `textscale bench` (synthetic batches, training and
# inference) for each model, the two binaries alternated for ROUNDS rounds in one invocation, so
# that a change of the machine's speed during the run hits both alike. Prints each round, the
# medians and new/old.
#
#   bench/compare_binaries.sh OLD_BINARY NEW_BINARY [--rounds 3] [--models "crepe-small vdcnn-9"]
#                             [--batch-size 64] [--threads 2] [--steps 10] [--precision fp32]
#
# Both binaries get the same options; an option that only the new one knows cannot be compared.
set -euo pipefail
old=${1:?usage: compare_binaries.sh OLD NEW [options]}
new=${2:?usage: compare_binaries.sh OLD NEW [options]}
shift 2
rounds=3 models="crepe-small vdcnn-9" batch=64 threads=2 steps=10 precision=fp32
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    *) echo "compare_binaries.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $threads threads, batch $batch, $steps steps, $precision"
for model in $models; do
  for ((r = 1; r <= rounds; r++)); do
    for side in old new; do
      bin=$old
      [ "$side" = new ] && bin=$new
      "$bin" bench --model "$model" --batch-size "$batch" --threads "$threads" --steps "$steps" --warmup 2 \
        --precision "$precision" |
        /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print('$model', '$side', $r, d['train_samples_per_second'], d['infer_samples_per_second'])" >> "$out"
    done
  done
done
/usr/bin/python3 - "$out" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"{'model':12} {'side':4} {'round train samples/s':>40} {'median':>8} | {'round infer samples/s':>40} {'median':>8}")
med = {}
for model in dict.fromkeys(r[0] for r in rows):
    for side in ("old", "new"):
        t = [float(r[3]) for r in rows if r[0] == model and r[1] == side]
        i = [float(r[4]) for r in rows if r[0] == model and r[1] == side]
        med[model, side] = (statistics.median(t), statistics.median(i))
        print(f"{model:12} {side:4} {' '.join(f'{x:7.1f}' for x in t):>40} {med[model, side][0]:8.1f} | "
              f"{' '.join(f'{x:7.1f}' for x in i):>40} {med[model, side][1]:8.1f}")
    print(f"{model:12} new/old training {med[model, 'new'][0] / med[model, 'old'][0]:.3f}, "
          f"inference {med[model, 'new'][1] / med[model, 'old'][1]:.3f}")
PY
