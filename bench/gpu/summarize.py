#!/usr/bin/env python3
"""Turns run-kit.sh's output folder into a Markdown table: textscale vs PyTorch on one GPU.

Reads OUT/textscale.jsonl (textscale bench --device cuda), OUT/pytorch.jsonl (peer_gpu.py, eager
and compiled), OUT/peak.json (peer_gpu.py --peak) and, when there, OUT/ab.jsonl (Crepe-small with
its first block fused and unfused) and OUT/ab_bf16.jsonl (bf16 with bf16 and TF32 convolutions). For every model, batch and precision:
samples/s of each, the ratio textscale / PyTorch eager and / torch.compile, and textscale's dense
training FLOP rate as a fraction of the measured GEMM peak (bf16 peak for bf16, TF32 peak for
tf32 and fp32 -- fp32 runs without tensor cores, so its fraction is a lower bound of nothing and
is printed for completeness).

usage: summarize.py OUT_DIR
"""

import json
import math
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
          "| textscale TFLOP/s (dense) | of peak | windows +- (textscale / eager) | last loss (textscale / eager) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
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
        # Last losses: textscale bench since revision 7e93d5e (it exits with an error, and prints no
        # row, when that step's gradient is not finite); the windows' spread since --repeats.
        print(f"| {r['model']} | {r['batch']} | {r['precision']} | {ts:.0f} | {e} | {er} | {c} | {cr} "
              f"| {tflops:.1f} | {fraction} | {spread(r)} / {spread(eager)} | {last_loss(r)} / {last_loss(eager)} |")
    ab_table(read_lines(os.path.join(out, "ab.jsonl")),
             "Crepe's first block as one operation (fused) and as three (unfused), back to back:",
             "fused", "unfused")
    ab_table(read_lines(os.path.join(out, "ab_bf16.jsonl")),
             "--precision bf16 with the convolutions in bf16 and in TF32 (--bf16-conv off), back to back:",
             "bf16", "tf32")


def spread(row):
    """Half the range of a run's windows (--repeats) relative to its median, or "-"."""
    rates = (row or {}).get("train_samples_per_second_windows")
    if not rates:
        return "-"
    return f"{50 * (max(rates) - min(rates)) / row['train_samples_per_second']:.1f}%"


def last_loss(row):
    """A run's last training loss; "NOT FINITE" when it is not a number."""
    if not row or "last_train_loss" not in row:
        return "-"
    loss = row["last_train_loss"]
    return f"{loss:.3f}" if isinstance(loss, float) and math.isfinite(loss) else "**NOT FINITE**"


def ab_table(rows, title, first, second):
    """Two variants of the same runs side by side: samples/s of each and their ratio."""
    if not rows:
        return
    print(f"\n{title}\n")
    print(f"| model | batch | precision | {first} samples/s | {second} samples/s | {first} / {second} |")
    print("|---|---:|---|---:|---:|---:|")
    for r in rows:
        if r.get("variant") != first:
            continue
        other = next((u for u in rows if u.get("variant") == second and u["batch"] == r["batch"]
                      and u["model"] == r["model"] and u["precision"] == r["precision"]), None)
        a = r["train_samples_per_second"]
        b = other["train_samples_per_second"] if other else None
        print(f"| {r['model']} | {r['batch']} | {r['precision']} | {a:.0f} | "
              f"{f'{b:.0f}' if b else '-'} | {f'{a / b:.2f}x' if b else '-'} |")

if __name__ == "__main__":
    main()
