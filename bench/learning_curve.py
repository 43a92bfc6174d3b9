#!/usr/bin/python3
"""Learning curves: loss and accuracy against training time, for textscale runs and PyTorch peers.

    /usr/bin/python3 bench/learning_curve.py RUN_DIR [RUN_DIR...] --out curves.png [--title T]

A RUN_DIR is a textscale run directory (metrics.jsonl with "type" records and config.json) or a
bench/peer_train.py run directory (metrics.jsonl with one record per epoch). The time axis is
training time only (evaluations excluded), accumulated over the run:
- textscale: per log interval, (steps in it) x global batch / its samples/s, scaled so that an
  epoch's intervals add up to its measured training time; the training loss is drawn at every
  interval, validation (else test) loss and accuracy after every epoch;
- PyTorch peer: per epoch, its train_seconds; training loss per epoch, validation loss and
  accuracy after every epoch.
Each run is labelled with its directory name. Needs python3-matplotlib.
"""

import argparse
import json
import os


def load(run_dir):
    records = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl")) if l.strip()]
    name = os.path.basename(os.path.normpath(run_dir))
    curve = {"name": name, "train": [], "eval": []}
    if records and "type" in records[0] or any("type" in r for r in records):
        config = json.load(open(os.path.join(run_dir, "config.json")))
        batch = config.get("options", {}).get("batch-size") or config.get("batch_size") or 128
        last_step, epoch_start, pending = 0, 0.0, []  # pending: this epoch's intervals (duration, loss, acc)
        for r in records:
            if r.get("type") == "interval":
                pending.append(((r["step"] - last_step) * batch / r["samples_per_second"], r["loss"], r["accuracy"]))
                last_step = r["step"]
            elif r.get("type") == "epoch":
                # The intervals' durations, scaled to the epoch's measured training time.
                scale = r["train_seconds"] / max(sum(d for d, _, _ in pending), 1e-9)
                t = epoch_start
                for d, loss, acc in pending:
                    t += d * scale
                    curve["train"].append((t, loss, acc))
                pending = []
                epoch_start += r["train_seconds"]
                ev = r.get("valid") or r.get("test")
                if ev:
                    curve["eval"].append((epoch_start, ev["loss"], ev["accuracy"]))
    else:
        t = 0.0
        for r in records:
            t += r["train_seconds"]
            curve["train"].append((t, r["train_loss"], None))
            loss = r.get("valid_loss") if r.get("valid_loss") is not None else r.get("test_loss")
            acc = r.get("valid_accuracy") if r.get("valid_accuracy") is not None else r.get("test_accuracy")
            if acc is not None:
                curve["eval"].append((t, loss, acc))
    return curve


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="")
    args = p.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, run in enumerate(args.runs):
        c = load(run)
        colour = f"C{i}"
        if c["train"]:
            t, loss, _ = zip(*c["train"])
            ax_l.plot([x / 60 for x in t], loss, "-", color=colour, alpha=0.5, lw=1, label=f"{c['name']} train")
        if c["eval"]:
            t, loss, acc = zip(*c["eval"])
            ax_l.plot([x / 60 for x in t], loss, "o-", color=colour, label=f"{c['name']} validation")
            ax_a.plot([x / 60 for x in t], [100 * a for a in acc], "o-", color=colour, label=c["name"])
    ax_l.set_xlabel("training time (minutes)")
    ax_l.set_ylabel("cross-entropy loss")
    ax_a.set_xlabel("training time (minutes)")
    ax_a.set_ylabel("validation accuracy (%)")
    for ax in (ax_l, ax_a):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
