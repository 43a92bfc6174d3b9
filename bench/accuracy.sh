#!/usr/bin/env bash
# Accuracy on real data: textscale and PyTorch (bench/peer_train.py) train the same model with the
# same data, epochs, batch, optimiser and schedule; the final test accuracies go to a table.
#
#   bench/accuracy.sh --dataset ag_news --models "crepe-small vdcnn-9" --seeds "1 2 3" --epochs 5
#   bench/accuracy.sh --dataset imdb --models vdcnn-9 --seeds 1 --epochs 3
#   bench/accuracy.sh --models crepe-small --optimizer adam --lr 0.001 --epochs 10 --work runs/accuracy-adam
#
# Datasets (from --data / TEXTSCALE_DATA, default ../shared/data):
#   ag_news: train = alps_train_sample/dev.tsv (10,001 AG News training rows), test = test.csv (7,600)
#   imdb:    train = train.csv.gz (25,000), test = test.csv.gz (25,000)
# Training: SGD, momentum 0.9, lr 0.01 halved every 3 epochs (Zhang et al.; --step-epochs N halves it every N),
# batch --batch (128),
# no weight decay (--optimizer adam and --lr change the optimiser and the initial rate; the
# schedule stays); each run's data order and initialisation come from its seed (the two
# implementations draw different random numbers: compare means over seeds, not single runs).
# --valid F holds out a fraction F of the training rows (shuffled with seed 1, the same rows for
# every run) as a validation split, evaluated every epoch; the weights of the best validation
# epoch are then also evaluated on the test split (textscale's best.h5, bench/peer_train.py's
# --valid), and the table reports both the final and the best-validation test accuracy.
# Runs go to WORK/<dataset>/<impl>-<model>-s<seed>/ (default WORK = runs/accuracy); a finished run
# is not repeated and a stopped one continues from its last checkpoint (textscale: the last
# checkpoint; PyTorch: the last finished epoch), so the script can be stopped and started again.
# --parallel P runs P jobs at a time with threads/P threads each; --nice N lowers their priority.
# --device cuda trains both implementations on the GPU (the GPU kit's accuracy mode, bench/gpu/).
# --test-each-epoch also evaluates the test split after every epoch (in metrics.jsonl; the table
# still reports the final weights).
# --prepare-only writes the HDF5 files (and .npz copies for a peer without h5py) and stops.
# --paired starts both implementations of a seed from the same weights (PyTorch's initialisation
# for that seed, written into a textscale checkpoint by peer_train.py --export-init) and visits
# the rows in the same order (textscale's, peer_train.py --order textscale): the two runs of a
# seed then differ only in their dropout masks and in rounding, and the per-seed differences
# measure the implementations, not the seeds. Use a --work of its own for paired runs.
# --impls may also name `direct`: textscale with its direct convolutions instead of the Winograd
# ones (--winograd off), a change of rounding only. Paired, it is the control: how far
# rounding alone moves a seed's final accuracy, to set the textscale - PyTorch differences against.
# `bf16` is textscale with --precision bf16 (CPU: AVX512-BF16 or AMX); a seed's fp32 and bf16 runs
# start from the same weights and row order, and the table prints their per-seed differences.
# --dropout R sets Crepe's dropout rate in both implementations (default 0.5; 0 leaves a paired
# Crepe run with rounding as its only difference, as VDCNN's).
# The table (bench/accuracy_table.py) is printed at the end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
dataset=ag_news models="crepe-small vdcnn-9" seeds="1 2 3" epochs=5 threads=2 parallel=1
impls="textscale pytorch" work=$repo/runs/accuracy batch=128 optimizer=sgd lr=0.01 valid="" niceness=0 data=${TEXTSCALE_DATA:-$repo/../shared/data}
device=cpu prepare_only=0 paired=0 step_epochs=3 test_each=0 dropout=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dataset) dataset=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --optimizer) optimizer=$2; shift 2 ;;
    --lr) lr=$2; shift 2 ;;
    --step-epochs) step_epochs=$2; shift 2 ;;
    --test-each-epoch) test_each=1; shift ;;
    --valid) valid=$2; shift 2 ;;
    --nice) niceness=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --impls) impls=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --prepare-only) prepare_only=1; shift ;;
    --paired) paired=1; shift ;;
    --dropout) dropout=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE  # benchmark command: let the peer's OpenBLAS run at full speed
textscale=${TEXTSCALE:-$repo/build/bin/textscale}
python=${PYTHON:-/usr/bin/python3}
dir=$work/$dataset
mkdir -p "$dir"
split=()  # preprocess options that hold out the validation split
[ -n "$valid" ] && split=(--shuffle --seed 1 --validation-fraction "$valid")

# The raw data is needed only for files not yet prepared (the GPU kit carries them prepared).
need() { [ -f "$dir/train.h5" ] && [ -f "$dir/test.h5" ] || [ -f "$1" ] || { echo "SKIP: $2 not in $data" >&2; exit 77; }; }
case "$dataset" in
  ag_news)
    need "$data/ag_news/test.csv" "AG News"
    [ -f "$dir/train.h5" ] || "$textscale" preprocess --input "$data/ag_news/alps_train_sample/dev.tsv" \
      --format tsv --label-column 1 --labels names --classes "$data/ag_news/classes.txt" \
      --unescape backslash --no-words "${split[@]}" --output "$dir/train.h5"
    [ -f "$dir/test.h5" ] || "$textscale" preprocess --input "$data/ag_news/test.csv" --format zhang \
      --unescape backslash --no-words --output "$dir/test.h5" ;;
  imdb)
    need "$data/imdb/train.csv.gz" "IMDB"
    [ -f "$dir/train.h5" ] || "$textscale" preprocess --input "$data/imdb/train.csv.gz" --format zhang \
      --no-words "${split[@]}" --output "$dir/train.h5"
    [ -f "$dir/test.h5" ] || "$textscale" preprocess --input "$data/imdb/test.csv.gz" --format zhang \
      --no-words --output "$dir/test.h5" ;;
  *) echo "unknown dataset $dataset (ag_news, imdb)" >&2; exit 2 ;;
esac
if [ "$prepare_only" = 1 ]; then
  for f in "$dir"/*.h5; do  # a copy newer than its file is current
    [ "${f%.h5}.npz" -nt "$f" ] || "$python" "$here/peer_train.py" --export-npz "$f"
  done
  exit 0
fi

job_threads=$(( threads / parallel > 0 ? threads / parallel : 1 ))
case "$optimizer" in
  sgd) optimiser=(--optimizer sgd --lr "$lr" --momentum 0.9) ;;
  adam) optimiser=(--optimizer adam --lr "$lr") ;;
  *) echo "unknown optimizer $optimizer (sgd, adam)" >&2; exit 2 ;;
esac
test_ours=false
[ "$test_each" = 1 ] && test_ours=true
common_ours=(--device "$device" --epochs "$epochs" --batch-size "$batch" "${optimiser[@]}" --schedule step
  --step-epochs "$step_epochs" --step-factor 0.5 --threads "$job_threads" --test-each-epoch "$test_ours" --progress off --log-every 20)
common_peer=(--device "$device" --epochs "$epochs" --batch-size "$batch" "${optimiser[@]}" --schedule step
  --step-epochs "$step_epochs" --step-factor 0.5 --threads "$job_threads" --test-each-epoch "$test_each")
if [ -n "$dropout" ]; then
  common_ours+=(--dropout "$dropout")
  common_peer+=(--dropout "$dropout")
fi
if [ -n "$valid" ]; then
  [ -f "$dir/train.valid.h5" ] || { echo "error: $dir/train.h5 was made without --valid; remove it" >&2; exit 2; }
  common_ours+=(--valid "$dir/train.valid.h5")
  common_peer+=(--valid "$dir/train.valid.h5")
fi

# Paired runs and unpaired ones must not share a folder: the table would mix them.
if [ -f "$dir/paired" ] && [ "$paired" = 0 ]; then
  echo "error: $dir holds paired runs (--paired); give unpaired ones a --work of their own" >&2
  exit 2
fi
if [ ! -f "$dir/paired" ] && [ "$paired" = 1 ] && compgen -G "$dir/*-s[0-9]*" > /dev/null; then
  echo "error: $dir holds unpaired runs; give --paired runs a --work of their own" >&2
  exit 2
fi
[ "$paired" = 1 ] && touch "$dir/paired"
# init_for MODEL SEED: the shared starting weights of a paired run (made once).
init_for() {
  local template=$dir/paired-template-$1 init=$dir/paired-init-$1-s$2.h5
  if [ ! -f "$init" ]; then
    [ -f "$template/checkpoint.h5" ] || "$textscale" train --train "$dir/train.h5" --model "$1" --epochs 1 \
      --max-steps 1 --batch-size 2 --threads 1 --test-each-epoch false --progress off --run-dir "$template" > /dev/null
    "$python" "$here/peer_train.py" --export-init "$template/checkpoint.h5" "$init" "$1" "$2" > /dev/null
  fi
  echo "$init"
}

timer=()  # peak RSS and times per run, where GNU time is installed
[ -x /usr/bin/time ] && timer=(/usr/bin/time -v)
jobs=$(mktemp)
trap 'rm -f "$jobs"' EXIT
for seed in $seeds; do
  for model in $models; do
    for impl in $impls; do
      run=$dir/$impl-$model-s$seed
      if [ -f "$run/done" ]; then continue; fi
      if [ "$impl" = textscale ] || [ "$impl" = direct ] || [ "$impl" = bf16 ]; then
        cmd=("$textscale" train --train "$dir/train.h5" --test "$dir/test.h5" --model "$model" --seed "$seed"
          "${common_ours[@]}" --run-dir "$run")
        # A stopped run continues from its checkpoint (which records --init-from).
        if [ -f "$run/checkpoint.h5" ]; then
          cmd+=(--resume "$run/checkpoint.h5")
        elif [ "$paired" = 1 ]; then
          cmd+=(--init-from "$(init_for "$model" "$seed")")
        fi
        [ "$impl" = direct ] && cmd+=(--winograd off)
        [ "$impl" = bf16 ] && cmd+=(--precision bf16)
      elif [ "$impl" = pytorch ]; then
        cmd=("$python" "$here/peer_train.py" --train "$dir/train.h5" --test "$dir/test.h5" --model "$model"
          --seed "$seed" "${common_peer[@]}" --metrics "$run/metrics.jsonl" --checkpoint "$run/checkpoint.pt")
        [ "$paired" = 1 ] && cmd+=(--init-from "$(init_for "$model" "$seed")" --order textscale)
      else
        echo "unknown implementation $impl (textscale, pytorch, direct, bf16)" >&2; exit 2
      fi
      printf "%q " mkdir -p "$run"; printf "&& "; printf "%q " nice -n "$niceness" "${timer[@]}" "${cmd[@]}"
      printf '>> %q 2>&1' "$run/log.txt"
      if [ "$impl" != pytorch ] && [ -n "$valid" ]; then  # the best validation weights on the test split
        printf " && "; printf "%q " nice -n "$niceness" "$textscale" evaluate --checkpoint "$run/best.h5" \
          --data "$dir/test.h5" --device "$device" --threads "$job_threads" --json "$run/best_test.json"
        printf '>> %q 2>&1' "$run/log.txt"
      fi
      printf ' && touch %q\n' "$run/done"
    done
  done
done > "$jobs"
echo "$(wc -l < "$jobs") runs to do in $dir, $parallel at a time with $job_threads threads each"
tr '\n' '\0' < "$jobs" | xargs -0 -P "$parallel" -I{} bash -c '{}' || echo "some runs failed: see their log.txt" >&2
"$python" "$here/accuracy_table.py" "$dir"
