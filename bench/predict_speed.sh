#!/usr/bin/env bash
# The whole prediction path, raw CSV in and predictions CSV out (read, encode, infer, write), of
# `textscale predict` against its PyTorch peer (bench/peer_predict.py: the same encoding and model,
# written the way a Python user would), side by side on the same rows, threads and checkpoint.
#
#   bash bench/predict_speed.sh [--rows 1000] [--threads 2] [--models "crepe-small vdcnn-9 bilstm"]
#
# Checkpoints: each model after one training step on 4,000 AG News training rows (speed does not
# depend on the weights). Input: the first --rows rows of AG News's test split (Zhang's CSV).
# Prints one table row per model: records/s and MB/s of text for both, each one's share of time
# outside the model, textscale's speed-up, and for the character models the share of rows where
# both predict the same class (the peer loads textscale's weights). Times exclude start-up (model
# loading); textscale's are its --summary-json, the peer's its printed JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=1000 threads=2 models="crepe-small vdcnn-9 bilstm"
while [ $# -gt 0 ]; do
  case $1 in
    --rows) rows=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    *) echo "usage: $0 [--rows N] [--threads N] [--models \"...\"]" >&2; exit 2 ;;
  esac
done
bin=${TEXTSCALE_BIN:-build/bin/textscale}
data=${TEXTSCALE_DATA:-../shared/data}
[ -f "$data/ag_news/test.csv" ] || { echo "no AG News in $data" >&2; exit 2; }
# The peer's BLAS as Debian ships it: no CPU-type or cache-size overrides.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OMP_NUM_THREADS=$threads
work=$(mktemp -d /tmp/predict-speed.XXXXXX)
trap 'rm -rf "$work"' EXIT

head -n 4000 "$data/ag_news/alps_train_sample/dev.tsv" > "$work/train.tsv"
"$bin" preprocess --input "$work/train.tsv" --format tsv --label-column 1 --labels names \
  --classes "$data/ag_news/classes.txt" --unescape backslash --output "$work/train.h5" --quiet
head -n "$rows" "$data/ag_news/test.csv" > "$work/input.csv"
mb=$(awk -v b="$(stat -c %s "$work/input.csv")" 'BEGIN { printf "%.2f", b / 1e6 }')
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $threads threads; $rows AG News test rows ($mb MB)"
printf '%-12s %12s %9s %8s %12s %9s %8s %8s %7s\n' model "textscale/s" "MB/s" outside "pytorch/s" "MB/s" outside ratio agree
for model in $models; do
  "$bin" train --train "$work/train.h5" --model "$model" --epochs 1 --max-steps 1 --batch-size 32 \
    --threads "$threads" --progress off --run-dir "$work/$model" > /dev/null
  ckpt=$work/$model/checkpoint.h5
  "$bin" predict --checkpoint "$ckpt" --input "$work/input.csv" --input-format zhang --threads "$threads" \
    --output "$work/$model-textscale.csv" --summary-json "$work/$model-textscale.json" --quiet
  /usr/bin/python3 bench/peer_predict.py --checkpoint "$ckpt" --input "$work/input.csv" --input-format zhang \
    --threads "$threads" --output "$work/$model-peer.csv" > "$work/$model-peer.json"
  /usr/bin/python3 - "$work" "$model" <<'PY'
import csv, json, sys
work, model = sys.argv[1], sys.argv[2]
ts = json.load(open(f"{work}/{model}-textscale.json"))
peer = json.load(open(f"{work}/{model}-peer.json"))
ts_outside = (ts["read_seconds"] + ts["encode_seconds"] + ts["write_seconds"]) / ts["seconds"]
peer_outside = peer["outside_seconds"] / peer["seconds"]
a = list(csv.reader(open(f"{work}/{model}-textscale.csv")))[1:]
b = list(csv.reader(open(f"{work}/{model}-peer.csv")))[1:]
agree = "-" if model == "bilstm" else "%.4f" % (sum(x[4] == y[4] for x, y in zip(a, b)) / max(1, len(a)))
if len(a) != len(b):
    agree = f"rows {len(a)} vs {len(b)}"
print("%-12s %12.1f %9.3f %7.1f%% %12.1f %9.3f %7.1f%% %7.2fx %7s" % (
    model, ts["records_per_second"], ts["megabytes_per_second"], 100 * ts_outside,
    peer["records_per_second"], peer["megabytes_per_second"], 100 * peer_outside,
    ts["records_per_second"] / peer["records_per_second"], agree))
PY
done
