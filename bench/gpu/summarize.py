#!/usr/bin/env python3
"""Turns run-kit.sh's output folder into a Markdown table: textscale vs PyTorch on one GPU.

Reads OUT/textscale.jsonl (textscale bench --device cuda), OUT/pytorch.jsonl (peer_gpu.py, eager
and compiled), OUT/peak.json (peer_gpu.py --peak) and, when there, OUT/ab.jsonl (Crepe-small with
its first block fused and unfused). For every model, batch and precision:
samples/s of each, the ratio textscale / PyTorch eager and / torch.compile, and textscale's dense
training FLOP rate as a fraction of the measured GEMM peak (bf16 peak for bf16, TF32 peak for
tf32 and fp32 -- fp32 runs without tensor cores, so its fraction is a lower bound of nothing and
is printed for completeness).

usage: summarize.py OUT_DIR
"""

import json
import os
import sys


def read_lines(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    return rows


def main():
    out = sys.argv[1]
    ours = read_lines(os.path.join(out, "textscale.jsonl"))
    peers = read_lines(os.path.join(out, "pytorch.jsonl"))
    peak = {}
    peaks = read_lines(os.path.join(out, "peak.json"))
    if peaks:
        peak = peaks[0]
    print(f"# textscale vs PyTorch on {peak.get('device', 'the GPU')} (torch {peak.get('torch_version', '?')})\n")
    if peak:
        print(f"Measured peaks: bf16 GEMM {peak['gemm_bf16_tflops']:.0f} TFLOP/s, TF32 GEMM "
              f"{peak['gemm_tf32_tflops']:.0f} TFLOP/s, device copy {peak['copy_gb_per_second']:.0f} GB/s.\n")
    print("| model | batch | precision | textscale samples/s | PyTorch eager | ratio | torch.compile | ratio "
          "| textscale TFLOP/s (dense) | of peak |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in ours:
        key = (r["model"], r["batch"], r["precision"])
        eager = next((p for p in peers if (p["model"], p["batch"], p["precision"]) == key
                      and p["implementation"] == "pytorch-eager"), None)
        comp = next((p for p in peers if (p["model"], p["batch"], p["precision"]) == key
                     and p["implementation"] == "pytorch-compile"), None)
        ts = r["train_samples_per_second"]
        tflops = r["train_gflops_dense"] / 1e3
        reference = peak.get("gemm_bf16_tflops" if r["precision"] == "bf16" else "gemm_tf32_tflops")

        def cell(p):
            if not p:
                return "-", "-"
            return f"{p['train_samples_per_second']:.0f}", f"{ts / p['train_samples_per_second']:.2f}x"

        e, er = cell(eager)
        c, cr = cell(comp)
        fraction = f"{100 * tflops / reference:.1f}%" if reference else "-"
        print(f"| {r['model']} | {r['batch']} | {r['precision']} | {ts:.0f} | {e} | {er} | {c} | {cr} "
              f"| {tflops:.1f} | {fraction} |")
    ab = read_lines(os.path.join(out, "ab.jsonl"))
    if ab:
        print("\nCrepe's first block as one operation (fused) and as three (unfused), back to back:\n")
        print("| model | batch | precision | fused samples/s | unfused samples/s | fused / unfused |")
        print("|---|---:|---|---:|---:|---:|")
        for r in ab:
            if r.get("variant") != "fused":
                continue
            other = next((u for u in ab if u.get("variant") == "unfused" and u["batch"] == r["batch"]
                          and u["model"] == r["model"] and u["precision"] == r["precision"]), None)
            fused = r["train_samples_per_second"]
            unfused = other["train_samples_per_second"] if other else None
            print(f"| {r['model']} | {r['batch']} | {r['precision']} | {fused:.0f} | "
                  f"{f'{unfused:.0f}' if unfused else '-'} | {f'{fused / unfused:.2f}x' if unfused else '-'} |")


if __name__ == "__main__":
    main()
