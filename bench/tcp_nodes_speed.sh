#!/usr/bin/env bash
# Data-parallel speed across "nodes" on one machine: 1 process, then 2 and 3 nodes x 1 rank over
# TCP, the nodes being network + UTS namespaces on a bridge (jobs/slurm/local-nodes.sh). The
# settings of bench/scaling_speed.sh: global batch 128, AG News's training sample, `textscale train
# --max-steps 2K --log-every K`, the second interval (K steps after K warm-up steps) timed. Then
# MPI_Allreduce alone over TCP between the nodes (build/bench/allreduce_bench, 2 and 3 nodes), for
# the cost model: `bench/cost_model.py --measured FILE --tcp` reads the JSON lines this writes.
#
# The nodes share this machine's cores (and the ranks run unbound: --bind-to core would put every
# node's rank on its first core): with more nodes than cores the ranks oversubscribe them, and the
# table says so.
#
# Usage: bench/tcp_nodes_speed.sh [--models "crepe-small vdcnn-9"] [--nodes "2 3"] [--batch 128]
#        [--steps K] [--out FILE]      (as root; the nodes are removed at exit)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
invocation="bench/tcp_nodes_speed.sh $*"
models="crepe-small vdcnn-9" node_counts="2 3" batch=128 steps=6 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models=$2; shift 2 ;;
    --nodes) node_counts=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
textscale=${TEXTSCALE:-$repo/build/bin/textscale}
allreduce=${ALLREDUCE_BENCH:-$repo/build/bench/allreduce_bench}
python=${PYTHON:-/usr/bin/python3}
data=${TEXTSCALE_DATA:-$repo/../shared/data}
[ -f "$data/ag_news/alps_train_sample/dev.tsv" ] || { echo "SKIP: no AG News in $data" >&2; exit 77; }
nodes() { bash "$repo/jobs/slurm/local-nodes.sh" "$@"; }
most=$(tr ' ' '\n' <<< "$node_counts" | sort -n | tail -n 1)
work=$(mktemp -d)
trap 'nodes stop > /dev/null 2>&1 || true; rm -rf "$work"' EXIT
nodes start "$most" > "$work/nodes.log" 2>&1 || { cat "$work/nodes.log" >&2; exit 1; }
load_before=$(cat /proc/loadavg)
"$textscale" preprocess --input "$data/ag_news/alps_train_sample/dev.tsv" --format tsv --label-column 1 \
  --labels names --classes "$data/ag_news/classes.txt" --unescape backslash --no-words --output "$work/train.h5" > /dev/null

# run NODES MODEL: textscale on NODES nodes x 1 rank (1: one process in the first node) -> JSON line
run() {
  local n=$1 model=$2 dir=$work/$2-$1
  local args=(train --train "$work/train.h5" --model "$model" --batch-size "$batch" --threads 1
    --max-steps $((2 * steps)) --log-every "$steps" --progress off --run-dir "$dir")
  if [ "$n" = 1 ]; then
    nodes exec "$(nodes names | head -n 1)" "$textscale" "${args[@]}" > "$dir.log" 2>&1
  else
    nodes mpirun -np "$n" --map-by node --bind-to none "$textscale" "${args[@]}" > "$dir.log" 2>&1
  fi || { cat "$dir.log" >&2; return 1; }
  "$python" - "$dir/metrics.jsonl" "$dir/config.json" "$n" "$model" "$(nproc)" <<'PY'
import json, sys
timed = [json.loads(l) for l in open(sys.argv[1]) if '"interval"' in l][1]
config = json.load(open(sys.argv[2]))
n, cores = int(sys.argv[3]), int(sys.argv[5])
print(json.dumps({"impl": "textscale", "config": "1x1" if n == 1 else f"{n} nodes x 1 (tcp)", "ranks": n,
                  "nodes": n, "cores": cores, "hosts": config.get("hosts"), "model": sys.argv[4],
                  "parameters": config["parameters"], "samples_per_second": timed["samples_per_second"],
                  "comm_wait_ms_per_step": timed.get("comm_wait_ms_per_step", 0.0),
                  "comm_wait_least_ms_per_step": timed.get("comm_wait_least_ms_per_step", 0.0)}))
PY
}

results=$work/results.jsonl
for model in $models; do
  run 1 "$model" >> "$results"
  for n in $node_counts; do run "$n" "$model" >> "$results"; done
done
# The link alone: MPI_Allreduce over TCP between the nodes (up to 64 MiB: the gradients are 45-57 MB).
for n in $node_counts; do
  nodes mpirun -np "$n" --map-by node --bind-to none "$allreduce" --reps 10 --max-mib 64 |
    sed 's/}$/, "link": "tcp-veth"}/' >> "$work/allreduce.jsonl"
done
load_after=$(cat /proc/loadavg)

table=$("$python" - "$results" "$work/allreduce.jsonl" "$invocation" "$batch" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
allreduce = [json.loads(l) for l in open(sys.argv[2])]
invocation, batch = sys.argv[3], int(sys.argv[4])
print(f"Command: `{invocation}`; global batch {batch}; AG News training rows; N nodes x 1 rank x 1 thread "
      "under `jobs/slurm/local-nodes.sh mpirun --map-by node --bind-to none` (TCP BTL over veth + bridge).\n")
print("| model | configuration | samples/s | vs 1 process | efficiency | comm wait ms/step, largest / least |")
print("|---|---|---:|---:|---:|---:|")
for model in dict.fromkeys(r["model"] for r in rows):
    group = [r for r in rows if r["model"] == model]
    base = next(r for r in group if r["ranks"] == 1)["samples_per_second"]
    for r in group:
        n, cores = r["ranks"], r["cores"]
        # Efficiency against what the cores allow: N x one process, at most (cores) x.
        ideal = min(n, cores)
        note = f" ({n} ranks on {cores} cores: oversubscribed)" if n > cores else ""
        wait = "" if n == 1 else f'{r["comm_wait_ms_per_step"]:.1f} / {r["comm_wait_least_ms_per_step"]:.1f}'
        print(f'| {model} | {r["config"]}{note} | {r["samples_per_second"]:.1f} | {r["samples_per_second"] / base:.2f}x | '
              f'{r["samples_per_second"] / (ideal * base):.1%} | {wait} |')
for n in sorted({a["ranks"] for a in allreduce}):
    pts = [a for a in allreduce if a["ranks"] == n and a["bytes"] >= 2**20]
    print(f"\nMPI_Allreduce alone, {n} nodes over TCP: " +
          ", ".join(f'{a["bytes"] / 2**20:g} MiB {1000 * a["seconds"]:.2f} ms' for a in pts))
PY
)
echo "$table"
echo "load average before: $load_before; after: $load_after"
if [ -n "$out" ]; then
  { echo "$table"; echo; echo "load average before: $load_before; after: $load_after"; echo; echo '```';
    cat "$results" "$work/allreduce.jsonl"; echo '```'; } > "$out"
  echo "written to $out"
fi
