#!/usr/bin/python3
"""Scaling study: a model trained at 1, 2, 4, ... ranks, strong and weak scaling, to a CSV and PNG.

    /usr/bin/python3 bench/scaling_study.py --model crepe-small --ranks 1 2 --out results/scaling-study

For every mode and rank count N it runs `mpirun -np N textscale train` (1 thread per rank, AG
News rows from TEXTSCALE_DATA) for 2K steps and reads the second K-step interval of the run's
metrics.jsonl (the first is warm-up): samples/s and the communication wait per step.
- strong scaling: the global batch stays --batch (each rank gets batch / N rows);
- weak scaling: each rank keeps --batch rows (--batch-per-rank; global batch N x batch).
speed-up = samples/s(N) / samples/s(1); efficiency = speed-up / N (for weak scaling the same
ratio: the step time at 1 rank over the step time at N).

Predicted rows extend the measured ones to --predict-to ranks with bench/cost_model.py's model:
each rank's compute time per step is the measured 1-rank step scaled to its rows; all-reduce
latency and bandwidth are fitted to MPI_Allreduce timed here (build/bench/allreduce_bench, 2
ranks) up to 2 ranks per node, and one 100 Gb/s InfiniBand port shared by a node's 2 ranks
beyond; the model's exposed (not overlapped) all-reduce time is scaled by the ratio of the wait
measured at the largest measured rank count to the model's there, so the projection starts
from what was measured. Strong scaling stops at one row per rank. Predicted rows are marked
`predicted` in the CSV (their comm wait is the model's exposed time) and drawn dashed.

--tcp-measured FILE adds the runs of bench/tcp_nodes_speed.sh (JSON lines: N "nodes" on this
machine, network namespaces over TCP, global batch 128, so strong scaling) for the same model,
each against that file's own 1-process rate, drawn as their own points.

Writes OUT/scaling.csv, OUT/scaling.png (speed-up and efficiency vs ranks, with the ideal line)
and OUT/README.md (the command, the machine, the table). Needs python3-matplotlib for the plot.
"""

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cost_model import MODELS, exposed_time, fit_shared_memory  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def prepare_data(textscale, data, work, rows):
    tsv = os.path.join(data, "ag_news", "alps_train_sample", "dev.tsv")
    if not os.path.exists(tsv):
        sys.exit(f"SKIP: no AG News in {data} (set TEXTSCALE_DATA)")
    out = os.path.join(work, "train.h5")
    run([textscale, "preprocess", "--input", tsv, "--format", "tsv", "--label-column", "1", "--labels", "names",
         "--classes", os.path.join(data, "ag_news", "classes.txt"), "--unescape", "backslash", "--no-words",
         "--output", out])
    return out


def measure(textscale, train, model, ranks, mode, batch, steps, work, bucket):
    run_dir = os.path.join(work, f"{mode}-{ranks}")
    size = ["--batch-size", str(batch)] if mode == "strong" else ["--batch-per-rank", str(batch)]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpirun", "-np", str(ranks), "--bind-to", "core", textscale, "train", "--train", train, "--model", model,
           *size, "--threads", "1", "--max-steps", str(2 * steps), "--log-every", str(steps), "--epochs", "100",
           "--bucket-mb", str(bucket), "--progress", "off", "--run-dir", run_dir]
    run(cmd, env=env)
    records = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    interval = [r for r in records if r["type"] == "interval"][-1]
    global_batch = batch if mode == "strong" else batch * ranks
    sps = interval["samples_per_second"]
    return {"global_batch": global_batch, "batch_per_rank": global_batch / ranks, "samples_per_second": sps,
            "step_ms": 1000 * global_batch / sps, "comm_wait_ms": interval.get("comm_wait_ms_per_step", 0.0)}


def plot(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_s, ax_e) = plt.subplots(1, 2, figsize=(11, 4.5))
    colours = {"strong": "tab:blue", "weak": "tab:orange"}
    top = max(r["ranks"] for r in rows)
    ideal = [1, top]
    ax_s.plot(ideal, ideal, ":", color="black", label="ideal")
    ax_e.plot(ideal, [100, 100], ":", color="black", label="ideal")
    tcp = sorted((r["ranks"], r["speedup"], r["efficiency"]) for r in rows if r["kind"] == "measured over TCP")
    if tcp:
        n, sp, e = zip(*tcp)
        label = "strong scaling, measured: namespace nodes over TCP" + (" (3 on 2 cores)" if max(n) > 2 else "")
        ax_s.plot(n, sp, "^", color="tab:green", markersize=8, label=label)
        ax_e.plot(n, [100 * x for x in e], "^", color="tab:green", markersize=8, label=label)
    for mode in ("strong", "weak"):
        for kind, style, marker in (("measured", "-", "o"), ("predicted", "--", "s")):
            pts = sorted((r["ranks"], r["speedup"], r["efficiency"]) for r in rows
                         if r["mode"] == mode and r["kind"] == kind)
            if not pts:
                continue
            if kind == "predicted":  # draw from the last measured point on
                last = max((r for r in rows if r["mode"] == mode and r["kind"] == "measured"),
                           key=lambda r: r["ranks"])
                pts = [(last["ranks"], last["speedup"], last["efficiency"])] + pts
            n, s, e = zip(*pts)
            label = f"{mode} scaling, {kind}" + (" (cost model)" if kind == "predicted" else "")
            face = colours[mode] if kind == "measured" else "white"
            ax_s.plot(n, s, style, marker=marker, color=colours[mode], markerfacecolor=face, label=label)
            ax_e.plot(n, [100 * x for x in e], style, marker=marker, color=colours[mode], markerfacecolor=face,
                      label=label)
    for ax in (ax_s, ax_e):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("ranks")
        ax.grid(True, which="both", alpha=0.3)
    ax_s.set_yscale("log", base=2)
    ax_s.set_ylabel("speed-up over 1 rank (samples/s)")
    ax_e.set_ylabel("parallel efficiency (%)")
    ax_e.set_ylim(0, 110)
    ax_s.legend(fontsize=8)
    ax_e.legend(fontsize=8, loc="lower left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="crepe-small", choices=sorted(MODELS))
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--modes", nargs="+", default=["strong", "weak"], choices=["strong", "weak"])
    p.add_argument("--batch", type=int, default=128, help="global batch (strong) / rows per rank (weak)")
    p.add_argument("--steps", type=int, default=6, help="K: K warm-up steps, then K timed")
    p.add_argument("--bucket-mb", default="auto", help="textscale train --bucket-mb")
    p.add_argument("--tcp-measured", help="JSON lines of bench/tcp_nodes_speed.sh to add to the plot")
    p.add_argument("--predict-to", type=int, default=512, help="cost-model rows up to this many ranks (0: none)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if 1 not in args.ranks:
        p.error("--ranks must include 1 (the baseline)")
    textscale = os.environ.get("TEXTSCALE", os.path.join(REPO, "build", "bin", "textscale"))
    allreduce = os.environ.get("ALLREDUCE_BENCH", os.path.join(REPO, "build", "bench", "allreduce_bench"))
    data = os.environ.get("TEXTSCALE_DATA", os.path.join(REPO, "..", "shared", "data"))
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp()
    try:
        train = prepare_data(textscale, data, work, 0)
        rows = []
        for mode in args.modes:
            base = None
            for n in sorted(args.ranks):
                m = measure(textscale, train, args.model, n, mode, args.batch, args.steps, work, args.bucket_mb)
                base = base or m
                speedup = m["samples_per_second"] / base["samples_per_second"]
                rows.append({"mode": mode, "model": args.model, "ranks": n, **m, "speedup": speedup,
                             "efficiency": speedup / n, "kind": "measured"})
                print(f"{mode} {n} rank(s): {m['samples_per_second']:.1f} samples/s, "
                      f"comm wait {m['comm_wait_ms']:.1f} ms/step", flush=True)
        fitted = ""
        if args.predict_to > max(args.ranks):
            env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
            out = run(["mpirun", "-np", "2", "--bind-to", "core", allreduce, "--reps", "10", "--max-mib", "64"],
                      env=env).stdout
            points = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
            alpha, bandwidth = fit_shared_memory([q for q in points if q["bytes"] >= 2**20])
            fitted = (f"MPI_Allreduce fitted here: latency {alpha * 1e6:.0f} us, bandwidth {bandwidth / 1e9:.1f} GB/s; "
                      "beyond 2 ranks: one 100 Gb/s InfiniBand port per node of 2 ranks (6.25 GB/s a rank, 2 us)")
            params = MODELS[args.model][0]
            # Calibration: the model's exposed time at the largest measured rank count against the
            # communication wait measured there (the model alone assumes perfect overlap).
            top = max(args.ranks)
            calibration = {}
            for mode in args.modes:
                one = next(r for r in rows if r["mode"] == mode and r["ranks"] == 1)
                measured = next(r for r in rows if r["mode"] == mode and r["ranks"] == top)
                rows_top = args.batch / top if mode == "strong" else args.batch
                model = exposed_time(params, rows_top / one["samples_per_second"], top, bandwidth, alpha) if top > 1 else 0
                calibration[mode] = max(1.0, measured["comm_wait_ms"] / 1000 / model) if model > 0 else 1.0
            fitted += "; the model's exposed all-reduce time is scaled by the measured/modelled ratio at " + \
                ", ".join(f"{top} ranks ({m}: x{c:.1f})" for m, c in calibration.items())
            n = 2 * top
            while n <= args.predict_to:
                bw, lat = (bandwidth, alpha) if n <= 2 else (12.5e9 / 2, 2e-6)
                for mode in args.modes:
                    if mode == "strong" and n > args.batch:
                        continue  # fewer than one row per rank
                    one = next(r for r in rows if r["mode"] == mode and r["ranks"] == 1)
                    rows_per_rank = args.batch / n if mode == "strong" else args.batch
                    t_compute = rows_per_rank / one["samples_per_second"]
                    exposed = calibration[mode] * exposed_time(params, t_compute, n, bw, lat)
                    e = t_compute / (t_compute + exposed)
                    global_batch = args.batch if mode == "strong" else args.batch * n
                    sps = e * n * one["samples_per_second"]
                    rows.append({"mode": mode, "model": args.model, "ranks": n, "global_batch": global_batch,
                                 "batch_per_rank": global_batch / n, "samples_per_second": sps,
                                 "step_ms": 1000 * global_batch / sps, "comm_wait_ms": 1000 * exposed,
                                 "speedup": e * n, "efficiency": e, "kind": "predicted"})
                n *= 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.tcp_measured:
        runs = [json.loads(l) for l in open(args.tcp_measured) if l.startswith("{") and '"impl"' in l]
        runs = [r for r in runs if r["model"] == args.model]
        one = next(r for r in runs if r["ranks"] == 1)
        for r in runs:
            if r["ranks"] > 1:
                speedup = r["samples_per_second"] / one["samples_per_second"]
                rows.append({"mode": "strong", "model": args.model, "ranks": r["ranks"], "global_batch": args.batch,
                             "batch_per_rank": args.batch / r["ranks"], "samples_per_second": r["samples_per_second"],
                             "step_ms": 1000 * args.batch / r["samples_per_second"],
                             "comm_wait_ms": r.get("comm_wait_ms_per_step", 0.0), "speedup": speedup,
                             "efficiency": speedup / r["ranks"], "kind": "measured over TCP"})

    fields = ["mode", "model", "ranks", "global_batch", "batch_per_rank", "samples_per_second", "step_ms",
              "comm_wait_ms", "speedup", "efficiency", "kind"]
    with open(os.path.join(args.out, "scaling.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.4g}" if isinstance(r[k], float) else r[k]) for k in fields})
    cpu = platform.processor() or platform.machine()
    title = (f"textscale {args.model}, CPU ranks x 1 thread ({os.cpu_count()} cores here); "
             f"strong: global batch {args.batch}, weak: {args.batch} per rank")
    plot(rows, os.path.join(args.out, "scaling.png"), title)
    command = "/usr/bin/python3 bench/scaling_study.py " + " ".join(sys.argv[1:])
    revision = run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"]).stdout.strip()
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(f"# Scaling study: {args.model}\n\nCommand: `{command}` (revision {revision}, "
                f"{os.cpu_count()} cores, {cpu}).\n\n")
        if fitted:
            f.write(f"Predicted rows (cost model, bench/cost_model.py): {fitted}.\n\n")
        f.write("| mode | ranks | global batch | samples/s | step ms | comm wait ms | speed-up | efficiency | |\n")
        f.write("|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
        for r in rows:
            wait = f"{r['comm_wait_ms']:.1f}"
            f.write(f"| {r['mode']} | {r['ranks']} | {r['global_batch']} | {r['samples_per_second']:.1f} | "
                    f"{r['step_ms']:.0f} | {wait} | {r['speedup']:.2f} | {100 * r['efficiency']:.1f}% | {r['kind']} |\n")
        f.write("\n![speed-up and efficiency](scaling.png)\n")
    print(f"wrote {args.out}/scaling.csv, scaling.png, README.md")


if __name__ == "__main__":
    main()
