"""Summarises bench/accuracy.sh runs: final test accuracy per implementation and model.

    /usr/bin/python3 bench/accuracy_table.py runs/accuracy/ag_news

Reads every <impl>-<model>-s<seed>/metrics.jsonl under the folder (textscale's "final" record,
or the last epoch of bench/peer_train.py) and prints a markdown table: runs, mean accuracy,
standard deviation and range over seeds, and mean training time per epoch, then textscale's mean
minus PyTorch's per model. Runs with a validation split (bench/accuracy.sh --valid) get a second
table: the test accuracy of the best validation epoch's weights (textscale: best_test.json, the
evaluation of best.h5; PyTorch: "best_test_accuracy"). Unfinished runs are listed and left out.
With --per-epoch (runs made with bench/accuracy.sh --test-each-epoch) it also prints, per model
and implementation, the test accuracy after every epoch of every run, unfinished ones included.
Paired runs (bench/accuracy.sh --paired: both implementations of a seed start from the same
weights and row order) also get the per-seed differences, their mean and standard deviation;
where the folder holds `direct` runs (textscale with direct convolutions, a change of rounding
only), textscale minus them is printed beside it: the spread that rounding alone produces.
`bf16` runs (textscale with --precision bf16) start from textscale's weights and order for their
seed, so textscale minus bf16 per seed is printed too, with the `direct` control when present.
"""
import json
import os
import statistics
import sys


def read_run(path):
    """(final test accuracy, epochs, training seconds, best-validation test accuracy or None)."""
    rows = [json.loads(line) for line in open(os.path.join(path, "metrics.jsonl")) if line.strip()]
    if any(r.get("type") for r in rows):  # textscale
        final = [r for r in rows if r.get("type") == "final"]
        epochs = [r for r in rows if r.get("type") == "epoch"]
        if not final or "test" not in final[-1]:
            return None
        best_file = os.path.join(path, "best_test.json")
        best = json.load(open(best_file))["accuracy"] if os.path.exists(best_file) else None
        return (final[-1]["test"]["accuracy"], len(epochs), sum(e["train_seconds"] for e in epochs),
                best)
    if not rows or rows[-1].get("test_accuracy") is None:
        return None
    return (rows[-1]["test_accuracy"], len(rows), sum(r["train_seconds"] for r in rows),
            rows[-1].get("best_test_accuracy"))


def epoch_accuracies(path):
    """Test accuracy after each epoch, in %, for the epochs that were tested."""
    rows = [json.loads(line) for line in open(os.path.join(path, "metrics.jsonl")) if line.strip()]
    if any(r.get("type") for r in rows):  # textscale
        return [100 * r["test"]["accuracy"] for r in rows if r.get("type") == "epoch" and "test" in r]
    return [100 * r["test_accuracy"] for r in rows if r.get("test_accuracy") is not None]


def print_per_epoch(folder, names):
    """Markdown table per (model, implementation): a row per seed, a column per epoch."""
    runs = {}
    for name in names:
        impl, rest = name.split("-", 1)
        model, seed = rest.rsplit("-s", 1)
        runs.setdefault((model, impl), []).append((int(seed), epoch_accuracies(os.path.join(folder, name))))
    for (model, impl), seeds in sorted(runs.items()):
        width = max(len(acc) for _, acc in seeds)
        if width == 0:
            continue
        print(f"\nTest accuracy (%) after each epoch, {model}, {impl}:\n")
        print("| seed | " + " | ".join(str(e) for e in range(1, width + 1)) + " |")
        print("|---|" + "---:|" * width)
        for seed, acc in sorted(seeds):
            if not acc:
                continue
            cells = [f"{a:.1f}" for a in acc] + [""] * (width - len(acc))
            print(f"| {seed} | " + " | ".join(cells) + " |")


def print_table(title, groups, index):
    """Markdown table of the accuracy at position `index` of each run's record."""
    print(f"{title}:\n")
    print("| model | implementation | runs (seeds) | epochs | mean accuracy | std | min - max | train s/epoch |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for (model, impl), runs in sorted(groups.items()):
        acc = [r[index] for r in runs]
        std = statistics.stdev(acc) if len(acc) > 1 else float("nan")
        per_epoch = statistics.mean(r[3] / r[2] for r in runs)
        print(f"| {model} | {impl} | {len(runs)} ({','.join(str(r[0]) for r in sorted(runs))}) | {runs[0][2]} "
              f"| {100 * statistics.mean(acc):.2f}% | {100 * std:.2f} | {100 * min(acc):.2f} - {100 * max(acc):.2f} "
              f"| {per_epoch:.0f} |")
    for model in sorted({m for m, _ in groups}):
        ours, peer = groups.get((model, "textscale")), groups.get((model, "pytorch"))
        if ours and peer:
            diff = statistics.mean(r[index] for r in ours) - statistics.mean(r[index] for r in peer)
            print(f"\n{model}: textscale - PyTorch = {100 * diff:+.2f} points (mean over seeds)")


def print_paired(groups, index, pairs=(("pytorch", "textscale - PyTorch"), ("direct", "textscale - direct (control)"))):
    """Per seed, textscale minus each implementation in `pairs` (default: PyTorch and the `direct`
    control) for runs that started from the same weights and order."""
    header = ["\nPaired runs (same initial weights and row order per seed), points:\n",
              "| model | compared | per seed | mean | std | mean absolute |", "|---|---|---|---:|---:|---:|"]
    for model in sorted({m for m, _ in groups}):
        ours = {r[0]: r[index] for r in groups.get((model, "textscale"), [])}
        for other, label in pairs:
            theirs = {r[0]: r[index] for r in groups.get((model, other), [])}
            seeds = sorted(set(ours) & set(theirs))
            if not seeds:
                continue
            diffs = [100 * (ours[s] - theirs[s]) for s in seeds]
            for line in header:
                print(line)
            header = []
            std = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
            print(f"| {model} | {label} | " + ", ".join(f"s{s} {d:+.2f}" for s, d in zip(seeds, diffs)) +
                  f" | {statistics.mean(diffs):+.2f} | {std:.2f} | {statistics.mean(abs(d) for d in diffs):.2f} |")


def main():
    args = sys.argv[1:]
    per_epoch = "--per-epoch" in args
    args = [a for a in args if a != "--per-epoch"]
    if len(args) != 1:
        sys.exit("usage: accuracy_table.py [--per-epoch] FOLDER")
    folder = args[0]
    groups, unfinished, names = {}, [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.startswith(("textscale-", "pytorch-", "direct-", "bf16-")) or not os.path.isfile(os.path.join(path, "metrics.jsonl")):
            continue
        names.append(name)
        impl, rest = name.split("-", 1)
        model, seed = rest.rsplit("-s", 1)
        result = read_run(path) if os.path.exists(os.path.join(path, "done")) else None
        if result is None:
            unfinished.append(name)
            continue
        groups.setdefault((model, impl), []).append((int(seed), *result))
    name = os.path.basename(os.path.normpath(folder))
    print_table(f"Final test accuracy, {name}", groups, 1)
    if os.path.exists(os.path.join(folder, "paired")):
        print_paired(groups, 1)
    elif any(impl == "bf16" for _, impl in groups):  # the same seed: the same weights and order
        print_paired(groups, 1, (("bf16", "textscale fp32 - bf16"), ("direct", "textscale - direct (control)")))
    best = {key: runs for key, runs in groups.items() if all(r[4] is not None for r in runs)}
    if best:
        print()
        print_table(f"Test accuracy of the best validation epoch's weights, {name}", best, 4)
    if per_epoch:
        print_per_epoch(folder, names)
    if unfinished:
        print(f"\nunfinished: {', '.join(unfinished)}")


if __name__ == "__main__":
    main()
