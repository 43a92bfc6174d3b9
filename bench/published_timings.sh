#!/usr/bin/env bash
# The seeds' published configurations run through their Slurm job scripts (jobs/slurm/*-cpu.sbatch)
# on a local one-node Slurm, for a few steps each, to measure training throughput on this machine
# next to the published figures. The original datasets are not available here; each job runs on
# the nearest real data in TEXTSCALE_DATA, named in the output:
#   Crepe / Amazon polarity (binary sentiment, reviews) -> IMDB training reviews (binary sentiment)
#   Crepe / DBpedia (topic, 14 classes)                 -> AG News training sample (topic, 4 classes)
#   VDCNN-9 / Amazon categories (7 classes)             -> the Amazon review full sample (5 classes)
# Throughput does not depend on the data beyond the number of classes (the last layer), so the
# samples/s carry over; s/epoch is samples/s applied to the published epoch sizes.
#
# usage: bench/published_timings.sh [--ranks 2] [--steps 4] [--out FILE]   (as root: starts Slurm)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ranks=2 steps=4 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --ranks) ranks=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
data=${TEXTSCALE_DATA:-$repo/../shared/data}
bin=${TEXTSCALE_BIN:-$repo/build/bin/textscale}
work=$(mktemp -d)
trap 'bash "$repo/jobs/slurm/local-cluster.sh" stop > /dev/null 2>&1 || true; rm -rf "$work"' EXIT
bash "$repo/jobs/slurm/local-cluster.sh" start > "$work/cluster.log" 2>&1
export SLURM_CONF=${SLURM_LOCAL_DIR:-/var/tmp/textscale-slurm}/etc/slurm.conf
prep() { "$bin" preprocess --no-words "$@" > /dev/null; }
prep --input "$data/imdb/train.csv.gz" --shuffle --seed 1 --output "$work/imdb_train.h5"
prep --input "$data/imdb/test.csv.gz" --output "$work/imdb_test.h5"
prep --input "$data/ag_news/alps_train_sample/dev.tsv" --format tsv --label-column 1 --labels names \
  --classes "$data/ag_news/classes.txt" --unescape backslash --output "$work/ag_train.h5"
prep --input "$data/ag_news/test.csv" --format zhang --unescape backslash --classes "$data/ag_news/classes.txt" \
  --output "$work/ag_test.h5"
prep --input "$data/amazon_review_full_sample/test_zhang_format.csv" --format zhang --output "$work/amazon5.h5"

export TEXTSCALE_HOME=$repo TEXTSCALE_BIN=$bin TEXTSCALE_RUNS=$work/runs
# job SCRIPT TRAIN TEST: sbatch --wait with $ranks tasks of 1 CPU, 2*steps steps; prints samples/s of the 2nd interval
job() {
  local script=$1
  TRAIN=$2 TEST=$3 EXTRA_ARGS="--max-steps $((2 * steps)) --log-every $steps --threads 1 --limit-eval 64" \
    sbatch --wait --parsable --ntasks="$ranks" --ntasks-per-node="$ranks" --cpus-per-task=1 --time=60 \
    --output="$work/%x-%j.out" "$repo/jobs/slurm/$script" > "$work/id"
  local id
  id=$(tr -dc 0-9 < "$work/id")
  /usr/bin/python3 - "$work/runs/${script%.sbatch}-$id" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
config = json.load(open(sys.argv[1] + "/config.json"))
interval = [r for r in rows if r["type"] == "interval"][-1]
print(interval["samples_per_second"], config["options"]["model"] if "model" in config["options"] else "?",
      config["batch_size"] if "batch_size" in config else "?")
PY
}
read -r polarity polarity_model _ < <(job crepe-amazon-polarity-cpu.sbatch "$work/imdb_train.h5" "$work/imdb_test.h5")
read -r dbpedia dbpedia_model _ < <(job crepe-dbpedia-cpu.sbatch "$work/ag_train.h5" "$work/ag_test.h5")
read -r categories categories_model _ < <(job vdcnn9-amazon-categories-cpu.sbatch "$work/amazon5.h5" "$work/amazon5.h5")
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
revision=$(git -C "$repo" rev-parse --short=12 HEAD)
table=$(/usr/bin/python3 - "$polarity" "$dbpedia" "$categories" "$ranks" "$cpu" <<'PY'
import sys
pol, dbp, cat = (float(x) for x in sys.argv[1:4])
ranks, cpu = sys.argv[4], sys.argv[5]
def hms(s):
    return f"{s / 3600:.1f} h"
print(f"| configuration | published: hardware, reviews/s, s/epoch, accuracy | textscale: hardware, data, samples/s, s/epoch (extrapolated) |")
print("|---|---|---|")
print(f"| Crepe (large) on Amazon polarity, batch 128 per rank, epoch of 2,097,152 reviews | 4 K80s: 220 /s, 9,550 s, 94.2% | {ranks} CPU ranks x 1 thread ({cpu}), IMDB reviews: {pol:.1f} /s, {2097152 / pol:,.0f} s ({hms(2097152 / pol)}); accuracy not measured |")
print(f"| Crepe (large) on DBpedia, batch 128, epoch of 560,000 | 1 K80: {560000 / 3403:.0f} /s (3,403 s an epoch), 99.1% | {ranks} CPU ranks x 1 thread, AG News rows: {dbp:.1f} /s, {560000 / dbp:,.0f} s ({hms(560000 / dbp)}); accuracy not measured |")
print(f"| VDCNN-9 on Amazon categories (7 classes), batch 128 per rank, epoch of 2.38M | not published | {ranks} CPU ranks x 1 thread, Amazon review full sample: {cat:.1f} /s, {2380000 / cat:,.0f} s ({hms(2380000 / cat)}) |")
PY
)
report="$table

Measured by \`bench/published_timings.sh --ranks $ranks --steps $steps\` (revision $revision) through the job
scripts on a local one-node Slurm: $((2 * steps)) steps of each, samples/s over the last $steps."
echo "$report"
[ -n "$out" ] && echo "$report" > "$out"
exit 0
