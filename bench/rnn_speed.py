#!/usr/bin/python3
"""PyTorch's nn.LSTM on the shapes of build/bench/rnn_speed (bench/rnn_speed.cpp), on the CPU.

A bidirectional (or, with --unidirectional, one-direction) nn.LSTM(c_in, hidden, batch_first=True)
over a padded batch (batch, t, c_in) of uniform values in [-1, 1]; every row is t steps long (no
packing), as rnn_speed's `--lengths full`. Times, after --warmup untimed calls, --iterations calls
of:
- inference: eval mode under torch.no_grad();
- training forward: train mode, the input requiring its gradient;
- forward and backward: the training forward, then out.backward(diff_dst) with diff_dst uniform
  in [-1, 1]; parameter gradients are reset to None first, so that each call writes them anew.
Prints one JSON line with, for each, the median and the fastest wall-clock milliseconds and the
median CPU milliseconds of the process (all threads, including any that spin while they wait):
  {"batch", "t", "c_in", "hidden", "directions", "threads", "inference_ms", "inference_fastest_ms",
   "inference_cpu_ms", "training_forward_ms", ..., "forward_backward_cpu_ms", "torch_version", "blas"}

bench/rnn_speed.sh runs this with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset.

    /usr/bin/python3 bench/rnn_speed.py --batch 32 --threads 2 [--t 300 --c-in 200 --hidden 100]
"""

import argparse
import json
import os
import re
import statistics
import time

import torch


def blas_description():
    """torch's BLAS build setting and the BLAS shared objects mapped into this process."""
    match = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    mapped = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            name = os.path.basename(line.split()[-1]) if len(line.split()) >= 6 else ""
            if "blas" in name or "lapack" in name or "mkl" in name:
                mapped.add(name)
    return f"{match.group(1) if match else 'unknown'} ({', '.join(sorted(mapped)) or 'none mapped'})"


def timed(run, warmup, iterations):
    """The median and the fastest wall-clock milliseconds of `iterations` calls after `warmup`
    untimed ones, and the median CPU milliseconds of the process (all threads)."""
    for _ in range(warmup):
        run()
    wall, cpu = [], []
    for _ in range(iterations):
        cpu_start, start = time.process_time(), time.perf_counter()
        run()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - cpu_start) * 1e3)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--t", type=int, default=300)
    parser.add_argument("--c-in", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--unidirectional", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(args.c_in, args.hidden, batch_first=True, bidirectional=not args.unidirectional)
    src = torch.rand(args.batch, args.t, args.c_in) * 2 - 1
    directions = 1 if args.unidirectional else 2
    diff_dst = torch.rand(args.batch, args.t, directions * args.hidden) * 2 - 1

    def inference():
        with torch.no_grad():
            lstm(src)

    training_src = src.clone().requires_grad_(True)

    def training_forward():
        return lstm(training_src)[0]

    def forward_backward():
        for p in lstm.parameters():
            p.grad = None
        training_src.grad = None
        training_forward().backward(diff_dst)

    result = {"batch": args.batch, "t": args.t, "c_in": args.c_in, "hidden": args.hidden, "directions": directions,
              "threads": torch.get_num_threads()}
    lstm.eval()
    for name, run in (("inference", inference), ("training_forward", training_forward),
                      ("forward_backward", forward_backward)):
        if name == "training_forward":
            lstm.train()
        median, fastest, cpu = timed(run, args.warmup, args.iterations)
        result[f"{name}_ms"], result[f"{name}_fastest_ms"] = round(median, 2), round(fastest, 2)
        result[f"{name}_cpu_ms"] = round(cpu, 2)
    result.update(torch_version=torch.__version__, blas=blas_description())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
