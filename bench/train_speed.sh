#!/usr/bin/env bash
# Training and inference speed: textscale vs PyTorch on the same models, batches and threads.
#
# For each model (crepe-small, vdcnn-9) and batch size (32, 128), in this order and one process
# at a time:
#   1. `textscale bench`  (oneDNN backend, synthetic codes uniform over the alphabet),
#   2. bench/peer_speed.py (PyTorch, the same architecture from bench/peer_models.py, synthetic
#      codes drawn the same way),
# each warming up then timing training steps (forward, backward, SGD) and inference batches. The
# machine's peak is measured first, in the same invocation: oneDNN's SGEMM on 4096x4096 matrices
# with the same threads. Prints a markdown table: samples/s of both, the ratios, dense GFLOP/s
# (each model's dense forward FLOPs x 3 for a training step; Crepe's first layer counts as the
# dense convolution over its one-hot input, which textscale computes as a gather), the fraction
# of the SGEMM peak, and peak RSS of each process.
#
# Usage: bench/train_speed.sh [--threads N] [--steps N] [--warmup N] [--models "a b"] [--batches "32 128"]
#                             [--precision fp32|bf16] [--out FILE]
# --precision bf16: textscale's --precision bf16 against PyTorch under torch.autocast(bfloat16)
# (both: bf16 products, fp32 weights); the peak is then oneDNN's bf16 GEMM rate.
# The peer is made fair: Debian's torch uses the optimised OpenBLAS when libopenblas0-pthread is
# installed (checked below), its threads are set to the same count, and OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE (set in some environments, they slow OpenBLAS down) are unset for this command.
set -euo pipefail
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
invocation="bench/train_speed.sh $*"
threads=2 steps=8 warmup=3 models="crepe-small vdcnn-9" batches="32 128" precision=fp32 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
textscale=${TEXTSCALE:-$repo/build/bin/textscale}
python=${PYTHON:-/usr/bin/python3}
[ -x "$textscale" ] || { echo "build first: $textscale not found" >&2; exit 1; }
"$python" -c "import torch" 2> /dev/null || { echo "PyTorch missing: apt-get install -y python3-torch" >&2; exit 1; }
dpkg -s libopenblas0-pthread > /dev/null 2>&1 ||
  echo "warning: libopenblas0-pthread is not installed; torch then uses the reference BLAS (unfair)" >&2

results=$(mktemp)
trap 'rm -f "$results"' EXIT
echo "{\"peak\": $("$textscale" bench --gemm 4096 --threads "$threads")}" >> "$results"
for model in $models; do
  for batch in $batches; do
    ours=$("$textscale" bench --model "$model" --batch-size "$batch" --threads "$threads" --steps "$steps" \
      --warmup "$warmup" --precision "$precision")
    peer=$("$python" "$here/peer_speed.py" --model "$model" --batch-size "$batch" --threads "$threads" \
      --steps "$steps" --warmup "$warmup" --precision "$precision")
    echo "{\"ours\": $ours, \"peer\": $peer}" >> "$results"
  done
done

"$python" - "$results" "$invocation" "$threads" "$precision" > "${out:-/dev/stdout}" <<'PY'
import json, sys, platform, subprocess
rows = [json.loads(l) for l in open(sys.argv[1])]
bf16 = sys.argv[4] == "bf16"
peak = rows[0]["peak"]["bf16_gemm_gflops" if bf16 else "sgemm_gflops"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"Command: `{sys.argv[2]}` — {sys.argv[3]} threads, precision {sys.argv[4]}, CPU {cpu}; "
      f"measured {'bf16 GEMM' if bf16 else 'SGEMM'} peak (oneDNN, 4096^3): **{peak:.0f} GFLOP/s**"
      f" (SGEMM {rows[0]['peak']['sgemm_gflops']:.0f}).\n")
print("| model | batch | textscale train/s | PyTorch train/s | ratio | textscale infer/s | PyTorch infer/s | ratio "
      "| train GFLOP/s (dense) | % of peak | RSS textscale / PyTorch (MiB) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows[1:]:
    o, p = r["ours"], r["peer"]
    print(f"| {o['model']} | {o['batch']} | {o['train_samples_per_second']:.1f} | {p['train_samples_per_second']:.1f} "
          f"| {o['train_samples_per_second'] / p['train_samples_per_second']:.2f}x "
          f"| {o['infer_samples_per_second']:.1f} | {p['infer_samples_per_second']:.1f} "
          f"| {o['infer_samples_per_second'] / p['infer_samples_per_second']:.2f}x "
          f"| {o['train_gflops_dense']:.0f} | {100 * o['train_gflops_dense'] / peak:.0f}% "
          f"| {o['peak_rss_mib']:.0f} / {p['peak_rss_mib']:.0f} |")
print(f"\nPyTorch: {rows[1]['peer'].get('torch_version', '?')}, BLAS: {rows[1]['peer'].get('blas', '?')}")
PY
