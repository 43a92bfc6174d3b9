#!/usr/bin/env bash
# The recurrent layer alone: textscale's CPU backend (build/bench/rnn_speed, oneDNN's LSTM) against
# PyTorch's nn.LSTM (bench/rnn_speed.py) on the same shapes and threads, one process at a time, in
# the same invocation: a bidirectional LSTM over (batch, 300, 200) with 100 hidden units per
# direction at batch 32 and 128 (--t, --c-in, --hidden, --batches change them). For each: inference
# forward, training forward, and training forward + backward (with the input's gradient).
#
# Prints the machine's load (uptime) before and after, the CPU (lscpu), then a markdown table: the
# median milliseconds of both, PyTorch / textscale (the speed-up), the same from the fastest calls
# (less sensitive to other processes on the machine), textscale's GFLOP/s at the median (the GEMMs'
# FLOPs: forward 2 N T D 4H (C_in + H), backward twice that), and the CPU milliseconds of both
# processes (all threads; with one thread, the work a call costs whatever else runs on the machine,
# which on a shared machine compares the two more steadily than the wall clock).
#
# Usage: bench/rnn_speed.sh [--threads 2] [--batches "32 128"] [--iterations 5] [--warmup 2]
#                           [--t 300] [--c-in 200] [--hidden 100]
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (set in some environments, they slow OpenBLAS down) are
# unset for this command, and PyTorch gets the same thread count (torch.set_num_threads).
set -euo pipefail
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
invocation="bench/rnn_speed.sh $*"
threads=2 batches="32 128" iterations=5 warmup=2 t=300 c_in=200 hidden=100
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --t) t=$2; shift 2 ;;
    --c-in) c_in=$2; shift 2 ;;
    --hidden) hidden=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
ours=${RNN_SPEED:-$repo/build/bench/rnn_speed}
python=${PYTHON:-/usr/bin/python3}
[ -x "$ours" ] || { echo "build first: $ours not found" >&2; exit 1; }
"$python" -c "import torch" 2> /dev/null || { echo "PyTorch missing: apt-get install -y python3-torch" >&2; exit 1; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT
load_before=$(uptime)
shape=(--t "$t" --c-in "$c_in" --hidden "$hidden" --threads "$threads" --iterations "$iterations" --warmup "$warmup")
for batch in $batches; do
  mine=$("$ours" --batch "$batch" "${shape[@]}")
  peer=$("$python" "$here/rnn_speed.py" --batch "$batch" "${shape[@]}")
  echo "{\"ours\": $mine, \"peer\": $peer}" >> "$results"
done
load_after=$(uptime)

"$python" - "$results" "$invocation" "$load_before" "$load_after" <<'PY'
import json, subprocess, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
cpu = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout
            .splitlines() if l.startswith("Model name")), "?")
first = rows[0]["ours"]
print(f"Command: `{sys.argv[2]}` — {first['threads']} threads, CPU {cpu} (oneDNN: {first['cpu_isa']}); "
      f"bidirectional LSTM, T {first['t']}, C_in {first['c_in']}, H {first['hidden']}.")
print(f"Load before: `{sys.argv[3].strip()}`; after: `{sys.argv[4].strip()}`.\n")
print("| batch | pass | textscale ms | PyTorch ms | speed-up | fastest: textscale / PyTorch ms | speed-up "
      "| textscale GFLOP/s | CPU ms: textscale / PyTorch | ratio |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    o, p = r["ours"], r["peer"]
    for key, label in (("inference", "inference"), ("training_forward", "training forward"),
                       ("forward_backward", "forward + backward")):
        ms, peer_ms = o[f"{key}_ms"], p[f"{key}_ms"]
        fast, peer_fast = o[f"{key}_fastest_ms"], p[f"{key}_fastest_ms"]
        print(f"| {o['batch']} | {label} | {ms:.1f} | {peer_ms:.1f} | {peer_ms / ms:.2f}x "
              f"| {fast:.1f} / {peer_fast:.1f} | {peer_fast / fast:.2f}x | {o[f'{key}_gflops']:.0f} "
              f"| {o[f'{key}_cpu_ms']:.1f} / {p[f'{key}_cpu_ms']:.1f} | {p[f'{key}_cpu_ms'] / o[f'{key}_cpu_ms']:.2f}x |")
print(f"\nPyTorch {rows[0]['peer']['torch_version']}, BLAS: {rows[0]['peer']['blas']}")
PY
