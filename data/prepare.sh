#!/usr/bin/env bash
# Preprocesses fetched Zhang-format datasets (data/fetch.sh) into the character tensors the Slurm
# jobs train on: <dest>/<dataset>/train.h5 (shuffled, seed 1), train.valid.h5 (a held-out
# fraction of the training rows, default 5%) and test.h5.
#
# usage: data/prepare.sh [--dest DIR] [--valid FRACTION] [--words] [--textscale BIN] DATASET...
#   DIR: default $TEXTSCALE_DATA, else <repo>/../shared/data (data/fetch.sh's default).
#   --words: the word tensors too (the word models' jobs, bilstm-*.sbatch): the training file's
#   vocabulary (50,000 ids, 300 words a row), the test file over it; the files then serve the
#   character models' jobs as well. Existing outputs are not replaced: remove them first.
#   A dataset not in fetch.sh (e.g. the 7 Amazon product categories of the VDCNN job) works the
#   same once its train.csv and test.csv (Zhang form: "class","title","text", classes 1..K) and an
#   optional classes.txt are in <dest>/<dataset>/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${TEXTSCALE_DATA:-$repo/../shared/data}
valid=0.05
words=(--no-words)
bin=$repo/build/bin/textscale
datasets=()
while [ $# -gt 0 ]; do
  case $1 in
    --dest) dest=$2; shift 2 ;;
    --valid) valid=$2; shift 2 ;;
    --words) words=(); shift ;;
    --textscale) bin=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "prepare.sh: unknown option $1" >&2; exit 2 ;;
    *) datasets+=("$1"); shift ;;
  esac
done
[ ${#datasets[@]} -gt 0 ] || { echo "usage: data/prepare.sh [--dest DIR] [--valid F] [--words] DATASET..." >&2; exit 2; }
[ -x "$bin" ] || { echo "prepare.sh: no textscale binary at $bin (build first, or --textscale BIN)" >&2; exit 2; }
for ds in "${datasets[@]}"; do
  dir=$dest/$ds
  for f in train.csv test.csv; do
    [ -f "$dir/$f" ] || { echo "prepare.sh: $dir/$f is missing (data/fetch.sh $ds)" >&2; exit 1; }
  done
  classes=()
  [ -f "$dir/classes.txt" ] && classes=(--classes "$dir/classes.txt")
  unescape=(--unescape newline)
  [ "$ds" = ag_news ] && unescape=(--unescape backslash)
  echo "== $ds: training rows (validation fraction $valid)"
  "$bin" preprocess --input "$dir/train.csv" --format zhang --labels index1 "${classes[@]}" "${unescape[@]}" \
    "${words[@]}" --shuffle --seed 1 --validation-fraction "$valid" --output "$dir/train.h5"
  # Word ids must be the training file's: the test file takes its vocabulary.
  vocabulary=()
  [ ${#words[@]} = 0 ] && vocabulary=(--vocab-from "$dir/train.h5")
  echo "== $ds: test rows"
  "$bin" preprocess --input "$dir/test.csv" --format zhang --labels index1 "${classes[@]}" "${unescape[@]}" \
    "${words[@]}" "${vocabulary[@]}" --output "$dir/test.h5"
done
