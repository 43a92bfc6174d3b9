#!/usr/bin/env python3
"""Turns run-kit.sh's output folder into a Markdown table: textscale vs PyTorch on one GPU.

Reads OUT/textscale.jsonl (textscale bench --device cuda), OUT/pytorch.jsonl (peer_gpu.py, eager
and compiled), OUT/peak.json (peer_gpu.py --peak) and, when there, OUT/ab.jsonl (Crepe-small with
its first block fused and unfused) and OUT/ab_bf16.jsonl (bf16 with bf16 and TF32 convolutions). For every model, batch and precision:
samples/s of each, the ratio textscale / PyTorch eager and / torch.compile, and textscale's dense
training FLOP rate as a fraction of the measured GEMM peak (bf16 peak for bf16, TF32 peak for
tf32 and fp32 -- fp32 runs without tensor cores, so its fraction is a lower bound of nothing and
is printed for completeness).

The BiLSTM (a word model) has a section of its own: its training run on AG News words
(OUT/bilstm-metrics.jsonl, the run's metrics, and OUT/bilstm-evaluate.jsonl, its best checkpoint
on the test split on the GPU and on the CPU) and its textscale.jsonl / pytorch.jsonl rows
(synthetic full-length rows), against the PyTorch peer when the kit had one ("peer not available"
otherwise).

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
        if is_word_model(r):
            continue  # the BiLSTM's own section, below
        key = (r["model"], r["batch"], r["precision"])
        eager = next((p for p in peers if (p["model"], p["batch"], p["precision"]) == key
                      and p["implementation"] == "pytorch-eager"), None)
        comp = next((p for p in peers if (p["model"], p["batch"], p["precision"]) == key
                     and p["implementation"] == "pytorch-compile"), None)
        ts = r["train_samples_per_second"]
        tflops = r.get("train_gflops_dense", 0) / 1e3
        reference = peak.get("gemm_bf16_tflops" if r["precision"] == "bf16" else "gemm_tf32_tflops")

        e, er = peer_cell(eager, ts)
        c, cr = peer_cell(comp, ts)
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
    word_models(out, ours, peers)


def is_word_model(row):
    """textscale bench and peer_gpu.py name the vocabulary of a word model's rows."""
    return "vocab" in row or row.get("model") == "bilstm"


def peer_cell(p, ts):
    """A peer's samples/s and textscale's ratio to it: "-" when it did not run, "peer not
    available" when peer_gpu.py had no model (the BiLSTM's peer is optional)."""
    if not p:
        return "-", "-"
    if p.get("available") is False:
        return "peer not available", "-"
    return f"{p['train_samples_per_second']:.0f}", f"{ts / p['train_samples_per_second']:.2f}x"


def word_models(out, ours, peers):
    """The BiLSTM: its training run on AG News words, and its benchmark rows beside the peer's."""
    rows = [r for r in ours if is_word_model(r)]
    metrics = read_lines(os.path.join(out, "bilstm-metrics.jsonl"))
    evaluations = read_lines(os.path.join(out, "bilstm-evaluate.jsonl"))
    if not rows and not metrics and not evaluations:
        return
    print("\n## BiLSTM (words)\n")
    print(training_line(metrics, evaluations) + "\n")
    if not rows:
        print("No `textscale bench --model bilstm` rows.")
        return
    first = rows[0]
    vocab = first.get("vocab")
    print(f"Synthetic rows ({first.get('length', '?')} words, all real; vocabulary "
          f"{f'{vocab:,}' if isinstance(vocab, int) else '?'}), training steps of SGD with momentum on both "
          "sides, as for the character models:\n")
    print("| model | batch | precision | textscale samples/s | inference samples/s | PyTorch eager | ratio "
          "| windows +- (textscale / eager) | last loss (textscale / eager) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        key = (r["model"], r["batch"], r["precision"])
        eager = next((p for p in peers if (p.get("model"), p.get("batch"), p.get("precision")) == key
                      and p.get("implementation") == "pytorch-eager"), None)
        ts = r["train_samples_per_second"]
        e, er = peer_cell(eager, ts)
        print(f"| {r['model']} | {r['batch']} | {r['precision']} | {ts:.0f} "
              f"| {r.get('infer_samples_per_second', 0):.0f} | {e} | {er} "
              f"| {spread(r)} / {spread(eager)} | {last_loss(r)} / {last_loss(eager)} |")
    missing = sorted({p.get("reason", "") for p in peers if is_word_model(p) and p.get("available") is False})
    for reason in missing:
        print(f"\nPeer not available: {reason}")


def training_line(metrics, evaluations):
    """One sentence: the run's test accuracy (final weights), its best checkpoint's on each device,
    and its training rate over the run and per epoch."""
    title = ("Training on AG News words (jobs/main.sh's run on one GPU: Adam 0.002, batch 128, rows bucketed "
             "by length)")
    final = next((m for m in metrics if m.get("type") == "final"), None)
    epochs = [m for m in metrics if m.get("type") == "epoch"]
    if not metrics:
        return f"{title}: no metrics (train.log says why)."
    if not final:
        return (f"{title}: **did not finish** ({len(epochs)} epochs recorded, no final record; "
                "train.log says why).")
    parts = []
    test = final.get("test") or {}
    if "accuracy" in test:
        parts.append(f"test accuracy {test['accuracy']:.4f} with the final weights")
    best = ", ".join(f"{e['accuracy']:.4f} on the {'GPU' if e.get('device') == 'cuda' else 'CPU'}"
                     for e in evaluations if "accuracy" in e)
    if best:
        parts.append(f"the best validation checkpoint (epoch {final.get('best_epoch', '?')}) {best}")
    rate = final.get("train_samples_per_second")
    if rate:
        per_epoch = " / ".join(f"{e['samples_per_second']:.0f}" for e in epochs if "samples_per_second" in e)
        parts.append(f"{rate:.0f} training samples/s over the run" + (f" (epochs: {per_epoch})" if per_epoch else ""))
    return f"{title}, {len(epochs)} epochs: " + "; ".join(parts) + "."


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
