#!/usr/bin/env bash
# Data-parallel speed on one machine: textscale and PyTorch DDP side by side, same model, same
# global batch, same data (the first rows of AG News's training sample).
#
#   textscale 1 rank x 1 thread | 2 ranks x 1 thread (mpirun) | the same with --balance |
#             1 rank x 2 threads | 2 independent 1 x 1 runs at once, one per core, each at the
#             2-rank run's rows per rank (the machine's ceiling for 2 ranks)
#   PyTorch   1 x 1             | DDP gloo 2 x 1                | 1 x 2
#
# textscale trains with `textscale train --max-steps 2K --log-every K`; the second interval (K
# steps after K warm-up steps) gives samples/s and the communication wait per step. PyTorch runs
# bench/peer_ddp.py with K warm-up and K timed steps. The all-reduce is timed alone as textscale
# sends it (build/bench/allreduce_bench --nonblocking, libnbc's ring) at the size of the
# gradient's buckets (the bucket size each run's log names), giving the
# all-reduce time of one step and the fraction of it hidden behind backward: 1 - the least wait
# over the ranks / that time (the rank that waits least finished its backward last; the others'
# waits add their wait for it). Prints a markdown table and, for the cost model
# (bench/cost_model.py), a JSON line per textscale configuration.
#
# --rounds R runs "2x1" and the independent pair R times, alternated, and reports the median of
# each and of the per-round ratio (the "vs independent pair" column); the other rows run once.
#
# Usage: bench/scaling_speed.sh [--models "crepe-small vdcnn-9"] [--batch 128] [--steps K] [--rounds R]
#        [--bucket-mb auto|N] [--out FILE] [--no-peer] (textscale only)
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for the peer (benchmark command only).
set -euo pipefail
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
invocation="bench/scaling_speed.sh $*"
models="crepe-small" batch=128 steps=6 out="" bucket=auto peers=1 rounds=1
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --bucket-mb) bucket=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-peer) peers=0; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
textscale=${TEXTSCALE:-$repo/build/bin/textscale}
allreduce=${ALLREDUCE_BENCH:-$repo/build/bench/allreduce_bench}
python=${PYTHON:-/usr/bin/python3}
data=${TEXTSCALE_DATA:-$repo/../shared/data}
[ -f "$data/ag_news/alps_train_sample/dev.tsv" ] || { echo "SKIP: no AG News in $data" >&2; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun=(mpirun --bind-to core)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$textscale" preprocess --input "$data/ag_news/alps_train_sample/dev.tsv" --format tsv --label-column 1 \
  --labels names --classes "$data/ag_news/classes.txt" --unescape backslash --no-words --output "$work/train.h5" > /dev/null

"${mpirun[@]}" -np 2 --mca coll_libnbc_iallreduce_algorithm ring "$allreduce" --reps 10 --max-mib 64 --nonblocking \
  > "$work/allreduce.jsonl"

# ours NAME NP THREADS MODEL [OPTIONS]: one textscale configuration -> JSON line
ours() {
  local name=$1 np=$2 threads=$3 model=$4 launcher=() dir
  shift 4
  dir=$model-${name// /_}-${round:-0}
  [ "$np" -gt 1 ] && launcher=("${mpirun[@]}" -np "$np")
  "${launcher[@]}" "$textscale" train --train "$work/train.h5" --model "$model" --batch-size "$batch" \
    --threads "$threads" --max-steps $((2 * steps)) --log-every "$steps" --progress off --bucket-mb "$bucket" \
    "$@" --run-dir "$work/$dir" > "$work/$dir.log" 2>&1 || { cat "$work/$dir.log" >&2; return 1; }
  "$python" - "$work/$dir/metrics.jsonl" "$name" "$np" "$threads" "$model" "$(grep -o 'parameters: [0-9]*' "$work/$dir.log" | grep -o '[0-9]*')" \
    "$(grep -o 'bucket(s) of [0-9.]* MiB' "$work/$dir.log" | grep -o '[0-9.]* MiB' || true)" "${round:-0}" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"interval"' in l]
timed = rows[1]
print(json.dumps({"impl": "textscale", "config": sys.argv[2], "ranks": int(sys.argv[3]), "threads": int(sys.argv[4]),
                  "model": sys.argv[5], "parameters": int(sys.argv[6]), "bucket": sys.argv[7], "round": int(sys.argv[8]),
                  "samples_per_second": timed["samples_per_second"],
                  "comm_wait_ms_per_step": timed.get("comm_wait_ms_per_step", 0.0),
                  "comm_wait_least_ms_per_step": timed.get("comm_wait_least_ms_per_step", 0.0),
                  "rows_per_rank": timed.get("rows_per_rank")}))
PY
}
# pair MODEL: two independent 1-rank x 1-thread trainings at the same time, one per core, each at
# the 2-rank run's rows per rank (batch / 2) -> JSON line with their summed samples/s: what this
# machine gives two single-core jobs that never communicate (its cores share caches, memory
# bandwidth and clock headroom), the ceiling for 2 ranks. Its "ranks" is 0: the table below tells
# it from the 1- and 2-rank rows by that.
pair() {
  local model=$1 core dir=$work/$model-pair-${round:-0}
  for core in 0 1; do
    taskset -c "$core" "$textscale" train --train "$work/train.h5" --model "$model" --batch-size $((batch / 2)) \
      --threads 1 --max-steps $((2 * steps)) --log-every "$steps" --progress off --run-dir "$dir$core" \
      > "$dir$core.log" 2>&1 &
  done
  wait || { cat "$dir"0.log "$dir"1.log >&2; return 1; }
  "$python" - "$dir"0/metrics.jsonl "$dir"1/metrics.jsonl "$model" "${round:-0}" <<'PY'
import json, sys
rates = [[json.loads(l) for l in open(f) if '"interval"' in l][1]["samples_per_second"] for f in sys.argv[1:3]]
print(json.dumps({"impl": "textscale", "config": "2 x (1x1) independent", "ranks": 0, "threads": 1,
                  "model": sys.argv[3], "samples_per_second": sum(rates), "each": rates, "round": int(sys.argv[4])}))
PY
}
peer() {  # peer NAME WORLD THREADS MODEL
  "$python" "$here/peer_ddp.py" --model "$4" --world "$2" --threads "$3" --batch-size "$batch" --steps "$steps" \
    --warmup "$steps" --train "$work/train.h5" | "$python" -c "
import json, sys; r = json.loads(sys.stdin.readline())
print(json.dumps({'impl': 'pytorch', 'config': '$1', 'ranks': $2, 'threads': $3, 'model': '$4',
                  'samples_per_second': r['train_samples_per_second']}))"
}

results=$work/results.jsonl
for model in $models; do
  round=0
  ours "1x1" 1 1 "$model" >> "$results"
  ours "2x1 balanced" 2 1 "$model" --balance true >> "$results"
  ours "1x2" 1 2 "$model" >> "$results"
  for round in $(seq 1 "$rounds"); do
    ours "2x1" 2 1 "$model" >> "$results"
    pair "$model" >> "$results"
  done
  round=0
  [ "$peers" = 1 ] || continue
  peer "1x1" 1 1 "$model" >> "$results"
  peer "2x1 DDP" 2 1 "$model" >> "$results"
  peer "1x2" 1 2 "$model" >> "$results"
done

table=$("$python" - "$results" "$work/allreduce.jsonl" "$batch" "$invocation" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
allreduce = [json.loads(l) for l in open(sys.argv[2])]
batch, invocation, cpu = int(sys.argv[3]), sys.argv[4], sys.argv[5].strip()

def allreduce_seconds(nbytes):
    """Interpolated all-reduce time of nbytes (2 ranks, shared memory, as textscale sends it)."""
    pts = sorted((a["bytes"], a["seconds"]) for a in allreduce)
    for (b0, t0), (b1, t1) in zip(pts, pts[1:]):
        if b0 <= nbytes <= b1:
            return t0 + (t1 - t0) * (nbytes - b0) / (b1 - b0)
    return pts[-1][1] * nbytes / pts[-1][0]

def step_allreduce_seconds(nbytes, bucket_bytes):
    """All-reduce time of one step's gradient in buckets of bucket_bytes (0: one bucket)."""
    if bucket_bytes <= 0 or bucket_bytes >= nbytes:
        return allreduce_seconds(nbytes)
    full, rest = divmod(nbytes, bucket_bytes)
    return full * allreduce_seconds(bucket_bytes) + (allreduce_seconds(rest) if rest else 0.0)

def median_of(group, config):
    runs = [r for r in group if r["config"] == config]
    if not runs:
        return None
    merged = dict(runs[0])
    for key in ("samples_per_second", "comm_wait_ms_per_step", "comm_wait_least_ms_per_step"):
        if key in runs[0]:
            merged[key] = statistics.median(r[key] for r in runs)
    merged["runs"] = [r["samples_per_second"] for r in runs]
    return merged

rounds = max(r.get("round", 0) for r in rows)
print(f"Command: `{invocation}`; {cpu}; global batch {batch}; AG News training rows; textscale 2 ranks under "
      "`mpirun --bind-to core`, the independent pair at the 2-rank run's rows per rank, PyTorch DDP with gloo on "
      f"loopback{f'; 2x1 and the pair alternated over {rounds} rounds, medians' if rounds > 1 else ''}.\n")
print("| model | implementation | configuration | samples/s | vs 1x1 | 2-rank efficiency | vs independent pair | comm wait ms/step, largest / least | all-reduce alone ms | hidden |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
for model in dict.fromkeys(r["model"] for r in rows):
    for impl in ("textscale", "pytorch"):
        group = [r for r in rows if r["model"] == model and r["impl"] == impl]
        if not group:
            continue
        base = median_of(group, "1x1")["samples_per_second"]
        pair = median_of(group, "2 x (1x1) independent")
        ratios = [a["samples_per_second"] / b["samples_per_second"]
                  for a in group if a["config"] == "2x1"
                  for b in group if b["ranks"] == 0 and b.get("round") == a.get("round")]
        for config in dict.fromkeys(r["config"] for r in group):
            r = median_of(group, config)
            eff = r["samples_per_second"] / (2 * base) if r["ranks"] in (0, 2) else None
            vs_pair = ""
            if pair and r["ranks"] == 2:
                vs_pair = (f'{statistics.median(ratios):.1%} (median of {len(ratios)})' if config == "2x1" and ratios
                           else f'{r["samples_per_second"] / pair["samples_per_second"]:.1%}')
            wait = alone = hidden = ""
            if impl == "textscale" and r["ranks"] == 2:
                mib = float(r["bucket"].split()[0]) if r.get("bucket") else 0.0
                t = step_allreduce_seconds(4 * r["parameters"], int(mib * 2**20))
                least = r.get("comm_wait_least_ms_per_step", 0.0)
                wait = f'{r["comm_wait_ms_per_step"]:.1f} / {least:.1f}'
                alone = f"{1000 * t:.1f}"
                hidden = f'{max(0.0, 1 - least / 1000 / t):.0%}'
            label = config + (" (rows " + "/".join(map(str, r["rows_per_rank"])) + ")" if r.get("rows_per_rank") else "")
            if len(r["runs"]) > 1:
                label += " [" + ", ".join(f"{x:.1f}" for x in r["runs"]) + "]"
            print(f'| {model} | {impl} | {label} | {r["samples_per_second"]:.1f} | '
                  f'{r["samples_per_second"] / base:.2f}x | {"" if eff is None else f"{eff:.1%}"} | {vs_pair} | {wait} | {alone} | {hidden} |')
    ours = median_of([r for r in rows if r["model"] == model and r["impl"] == "textscale"], "2x1")
    ddp = next((r for r in rows if r["model"] == model and r["impl"] == "pytorch" and r["ranks"] == 2), None)
    if ddp:
        print(f'\n{model}: textscale 2x1 / PyTorch DDP 2x1 = {ours["samples_per_second"] / ddp["samples_per_second"]:.2f}x')
print("\nAll-reduce alone (2 ranks, shared memory, MPI_Iallreduce in place with libnbc's ring, as textscale sends "
      "buckets): " + ", ".join(f'{a["bytes"] / 2**20:g} MiB {1000 * a["seconds"]:.2f} ms' for a in allreduce if a["bytes"] >= 2**20))
PY
)
echo "$table"
if [ -n "$out" ]; then
  { echo "$table"; echo; echo '```'; cat "$results" "$work/allreduce.jsonl"; echo '```'; } > "$out"
  echo "written to $out"
fi
