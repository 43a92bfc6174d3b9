#!/usr/bin/python3
"""Predicted data-parallel efficiency of textscale's models at 8 ... 512 ranks.

    /usr/bin/python3 bench/cost_model.py --measured results/scaling-measured.jsonl
    /usr/bin/python3 bench/cost_model.py --measured tcp-nodes.md --tcp   # bench/tcp_nodes_speed.sh's output

Model (weak scaling: a fixed batch per rank, 128 rows as in the published setups):

  step time      T(N) = T_compute + T_exposed(N)
  T_compute      the time one rank needs for forward + backward + update of its rows
  all-reduce     T_ar(S, N) = 2 (N-1)/N * S / B  +  2 ceil(log2 N) * alpha
                 (the ring's bandwidth term - each byte crosses the slowest link 2(N-1)/N times -
                 with a tree's latency term, as NCCL picks per message size; S = 4 bytes x
                 parameters, B = the bandwidth of the slowest link a rank uses, alpha = the
                 per-message latency); the gradient goes in buckets of 4 MiB (textscale's
                 default), so a step's all-reduce is the sum over its buckets, T_ar(S, N) with
                 one latency term per bucket
  overlap        buckets are reduced while backward (2/3 of T_compute) still runs; what cannot
                 hide is whatever exceeds backward, and at least the last bucket, which is ready
                 only when backward ends:
                 T_exposed = max(T_ar(bucket, N), T_ar(S, N) - 2/3 T_compute)
                 (the ranks' step-time imbalance, which adds its own wait, is left out)
  efficiency     E(N) = T_compute / T(N)

Configurations for GPU clusters (the "configurations" section of the output):
  accumulation   `--accumulate A`: a step computes A micro-batches and all-reduces once, while the
                 last micro-batch's backward runs: T_compute = A T_micro, and only 2/3 T_micro
                 hides communication: T_exposed = max(T_ar(bucket), T_ar(S) - 2/3 T_micro)
  bf16 gradients `--allreduce-precision bf16`: S = 2 bytes x parameters, plus the conversions
                 (4 + 2 bytes read and written each way per parameter at the GPU's memory
                 bandwidth, 3.35 TB/s on an H100 SXM), exposed
  bucket size    `--bucket-mb auto`: b = sqrt(S c0 / c1), a power of two within 1-64 MiB, where a
                 bucket of b bytes costs c0 + b c1 (c0 = 2 ceil(log2 N) alpha, c1 = 2 (N-1)/N / B),
                 as textscale chooses it from the cost it measures at start
  per-GPU rows   micro-batches of 128 rows (the published setups), or of 256 and 512 where the
                 activations fit (Crepe-small and VDCNN-9 at 512 rows need a few GB)

Parameters (each stated in the output):
- CPU ranks: T_compute measured on this machine (textscale, 1 rank x 1 thread, batch 128, from
  bench/scaling_speed.sh); intra-node alpha/B fitted to MPI_Allreduce measured here (2 ranks,
  shared memory, build/bench/allreduce_bench) at 1 MiB to the bucket size, the messages textscale
  sends (Open MPI's shared-memory all-reduce slows down past 16 MiB here); across nodes one 100 Gb/s InfiniBand HDR port per
  node shared by its ranks (12.5 GB/s / ranks per node, ~2 us latency per message: Mellanox
  ConnectX-6 figures), 2 ranks (cores) per node as here.
- H100 ranks: 8 GPUs per node; NVLink 4 gives 450 GB/s per direction per GPU (NVIDIA H100 SXM
  datasheet: 900 GB/s total) - NCCL reaches ~360 GB/s bus bandwidth within a node (nccl-tests on
  DGX H100); across nodes one 400 Gb/s NDR port per GPU (DGX H100: 8 ConnectX-7), i.e. 50 GB/s,
  ~40 GB/s achieved; latency ~10 us intra-node, ~20 us across nodes per step of the algorithm.
  T_compute is an assumption, not a measurement (the GPU backend is not measured yet): the dense
  training FLOPs of a step at 35% of the H100's dense BF16 peak (989 TFLOP/s) for Crepe's large
  convolutions and GEMMs, 20% for VDCNN (narrow early stages are memory-bound).
"""

import argparse
import json
import math

# Parameters and dense forward FLOPs per sample (textscale's model summaries).
MODELS = {
    "crepe-small": (11_337_988, 737e6),
    "crepe-large": (95_933_444, 8_635e6),
    "vdcnn-9": (14_176_164, 605e6),
    "vdcnn-17": (16_268_964, 1_354e6),
    "vdcnn-29": (16_639_908, 1_803e6),
    # The BiLSTM at 300 words (2 directions x 300 steps x 4 gates x 100 x (200 + 100) x 2 FLOPs),
    # with its 50,000 x 200 embedding trained (a dense gradient on GPUs) or frozen (as the IMDB
    # recipe in docs/word-models.md).
    "bilstm": (10_241_604, 144e6),
    "bilstm-frozen": (241_604, 144e6),
}
RANKS = [2, 8, 16, 32, 64, 128, 256, 512]
BATCH_PER_RANK = 128
BUCKET_BYTES = 4 * 2**20  # textscale train --bucket-mb default


def gpu_rate(model):
    """Assumed training FLOP/s on an H100: 35% of the dense BF16 peak for Crepe's large
    convolutions and GEMMs, 20% for VDCNN (narrow early stages are memory-bound), 10% for the
    BiLSTM (a recurrence of small GEMMs, 100 hidden units)."""
    share = 0.35 if model.startswith("crepe") else 0.10 if model.startswith("bilstm") else 0.20
    return share * 989e12


def allreduce_time(nbytes, n, bandwidth, alpha):
    """One all-reduce of nbytes over n ranks."""
    if n == 1:
        return 0.0
    return 2 * (n - 1) / n * nbytes / bandwidth + 2 * math.ceil(math.log2(n)) * alpha


def gradient_allreduce_time(nbytes, n, bandwidth, alpha, bucket=BUCKET_BYTES):
    """A step's gradient of nbytes, all-reduced in buckets of `bucket` bytes."""
    full, rest = divmod(nbytes, bucket)
    return full * allreduce_time(bucket, n, bandwidth, alpha) + (
        allreduce_time(rest, n, bandwidth, alpha) if rest else 0.0)


def exposed_time(params, t_compute, n, bandwidth, alpha, bucket=BUCKET_BYTES):
    """Seconds of all-reduce per step not hidden behind backward (see the module's docstring)."""
    t_ar = gradient_allreduce_time(4 * params, n, bandwidth, alpha, bucket)
    return max(allreduce_time(min(bucket, 4 * params), n, bandwidth, alpha), t_ar - 2 / 3 * t_compute)


def auto_bucket(nbytes, n, bandwidth, alpha):
    """--bucket-mb auto's choice (src/dist/reducer.cpp, choose_bucket_elements), in bytes."""
    if n == 1:
        return nbytes
    c0 = 2 * math.ceil(math.log2(n)) * alpha
    c1 = 2 * (n - 1) / n / bandwidth
    best = math.sqrt(nbytes * c0 / c1)
    best = 2 ** round(math.log2(min(max(best, 2**20), 64 * 2**20)))
    return min(best, nbytes)


def configuration_efficiency(params, t_micro, accumulate, n, bandwidth, alpha, wire_bytes, hbm=3.35e12):
    """Efficiency of a step of `accumulate` micro-batches of t_micro seconds each, with the gradient
    sent as wire_bytes a parameter in --bucket-mb auto buckets (see the module's docstring)."""
    nbytes = wire_bytes * params
    bucket = auto_bucket(nbytes, n, bandwidth, alpha)
    t_ar = gradient_allreduce_time(nbytes, n, bandwidth, alpha, bucket)
    exposed = max(allreduce_time(min(bucket, nbytes), n, bandwidth, alpha), t_ar - 2 / 3 * t_micro)
    if wire_bytes == 2:
        exposed += 2 * 6 * params / hbm  # to bf16 and back
    t_compute = accumulate * t_micro
    return t_compute / (t_compute + exposed), bucket


def smallest_configuration(params, t_per_row, n, link, target=0.9):
    """The fewest rows per GPU (micro-batch rows x accumulate) reaching `target` at n GPUs, for each
    wire precision: [(wire, micro, accumulate, efficiency, bucket)]."""
    bandwidth, alpha = link(n)
    found = []
    for wire, wire_bytes in (("fp32", 4), ("bf16", 2)):
        best = None
        for micro in (128, 256, 512):
            for accumulate in (1, 2, 4, 8, 16, 32, 64):
                eff, bucket = configuration_efficiency(params, micro * t_per_row, accumulate, n, bandwidth, alpha,
                                                       wire_bytes)
                if eff >= target:
                    rows = micro * accumulate
                    if best is None or rows < best[1] * best[2] or (rows == best[1] * best[2] and accumulate < best[2]):
                        best = (wire, micro, accumulate, eff, bucket)
                    break
        found.append(best)
    return found


def fit_shared_memory(points):
    """alpha (s) and bandwidth (bytes/s) so that T_ar(S, 2) fits the measured 2-rank points."""
    # For N = 2: T = S / B + 2 alpha. Least squares on (S, T).
    xs = [p["bytes"] for p in points]
    ts = [p["seconds"] for p in points]
    n = len(xs)
    mx, mt = sum(xs) / n, sum(ts) / n
    slope = sum((x - mx) * (t - mt) for x, t in zip(xs, ts)) / sum((x - mx) ** 2 for x in xs)
    intercept = mt - slope * mx
    return max(intercept / 2, 1e-6), 1 / slope


def tcp_nodes(rows):
    """Measured against predicted: N namespace nodes x 1 rank over TCP on this machine, global
    batch 128 (bench/tcp_nodes_speed.sh). The link's latency and bandwidth are fitted to its own
    2-node MPI_Allreduce points (1 MiB to the bucket size); a rank's compute is its largest share
    of the batch at the 1-process rate, slowed by N / cores when the nodes outnumber the cores."""
    points = [r for r in rows if r.get("link") == "tcp-veth"]
    alpha, bw = fit_shared_memory([p for p in points if p["ranks"] == 2 and 2**20 <= p["bytes"] <= BUCKET_BYTES])
    print("## Cost model: namespace nodes over TCP on this machine (global batch 128)\n")
    print(f"Fitted to MPI_Allreduce between 2 nodes over TCP (veth + bridge): latency {alpha * 1e6:.0f} us, "
          f"bandwidth {bw / 1e9:.2f} GB/s.\n")
    print("| all-reduce | measured ms | model ms |")
    print("|---|---:|---:|")
    for p in points:
        if p["bytes"] in (2**20, BUCKET_BYTES, 16 * 2**20, 64 * 2**20):
            print(f'| {p["ranks"]} nodes, {p["bytes"] / 2**20:g} MiB | {1000 * p["seconds"]:.2f} | '
                  f'{1000 * allreduce_time(p["bytes"], p["ranks"], bw, alpha):.2f} |')
    print()
    base = {r["model"]: r for r in rows if r.get("impl") == "textscale" and r.get("config") == "1x1"}
    print("| model | nodes | compute ms/step (model) | all-reduce alone ms (model) | exposed ms (model) | "
          "samples/s predicted | samples/s measured | comm wait ms, largest / least (measured) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r.get("impl") != "textscale" or "nodes" not in r or r["ranks"] < 2 or r["model"] not in base:
            continue
        n, cores, params = r["ranks"], r["cores"], MODELS[r["model"]][0]
        rows_per_rank = math.ceil(128 / n)
        t_compute = rows_per_rank / base[r["model"]]["samples_per_second"] * max(1.0, n / cores)
        t_ar = gradient_allreduce_time(4 * params, n, bw, alpha)
        exposed = exposed_time(params, t_compute, n, bw, alpha)
        note = " (oversubscribed)" if n > cores else ""
        print(f'| {r["model"]} | {n}{note} | {1000 * t_compute:.0f} | {1000 * t_ar:.1f} | {1000 * exposed:.1f} | '
              f'{128 / (t_compute + exposed):.1f} | {r["samples_per_second"]:.1f} | '
              f'{r["comm_wait_ms_per_step"]:.1f} / {r["comm_wait_least_ms_per_step"]:.1f} |')
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--measured", required=True,
                   help="JSON lines of bench/scaling_speed.sh (textscale configurations and allreduce points)")
    p.add_argument("--tcp", action="store_true",
                   help="the measured lines are bench/tcp_nodes_speed.sh's: namespace nodes over TCP")
    args = p.parse_args()
    rows = [json.loads(l) for l in open(args.measured) if l.strip().startswith("{")]
    if args.tcp:
        tcp_nodes(rows)
        return
    rows = [r for r in rows if "link" not in r and "nodes" not in r]  # the namespace nodes' are --tcp's
    points = [r for r in rows if "bytes" in r and 2**20 <= r["bytes"] <= BUCKET_BYTES]
    alpha_shm, bw_shm = fit_shared_memory(points)
    measured = {r["model"]: r for r in rows if r.get("impl") == "textscale" and r.get("config") == "1x1"}
    two = {r["model"]: r for r in rows if r.get("impl") == "textscale" and r.get("config") == "2x1"}

    print("## Cost model: predicted weak-scaling efficiency (batch 128 per rank)\n")
    print(f"Fitted to MPI_Allreduce measured here (2 ranks, shared memory): latency {alpha_shm * 1e6:.0f} us, "
          f"bandwidth {bw_shm / 1e9:.1f} GB/s. Formulas and sources of the other parameters: "
          "`bench/cost_model.py`.\n")

    # Check against the 2-rank measurement on this machine.
    print("Check on this machine (2 ranks x 1 thread, shared memory, global batch 128 = 64 a rank):\n")
    print("| model | compute ms/step (measured) | all-reduce alone ms (model) | exposed ms (model) | comm wait ms, largest / least over the ranks (measured) |")
    print("|---|---:|---:|---:|---:|")
    for model, r in two.items():
        params = MODELS[model][0]
        t_compute = 64 / measured[model]["samples_per_second"]
        t_ar = gradient_allreduce_time(4 * params, 2, bw_shm, alpha_shm)
        exposed = exposed_time(params, t_compute, 2, bw_shm, alpha_shm)
        least = r.get("comm_wait_least_ms_per_step")
        print(f"| {model} | {1000 * t_compute:.0f} | {1000 * t_ar:.1f} | {1000 * exposed:.1f} | "
              f"{r['comm_wait_ms_per_step']:.1f} / {'-' if least is None else f'{least:.1f}'} |")
    print()

    scenarios = []
    # CPU cluster: 2 single-thread ranks per node, one 100 Gb/s port per node.
    for model, r in measured.items():
        t_compute = BATCH_PER_RANK / r["samples_per_second"]
        scenarios.append(("CPU nodes (2 ranks/node, 100 Gb/s IB)", model, t_compute,
                          lambda n: (bw_shm, alpha_shm) if n <= 2 else (12.5e9 / 2, 2e-6), BUCKET_BYTES))
    # H100 nodes: 8 GPUs/node, NVLink within, NDR across.
    for model, (params, fwd) in MODELS.items():
        rate = gpu_rate(model)
        t_compute = 3 * fwd * BATCH_PER_RANK / rate
        for bucket in (BUCKET_BYTES, 32 * 2**20):
            scenarios.append((f"H100 nodes (8 GPUs/node, NVLink 4 + 400 Gb/s NDR per GPU), "
                              f"{bucket // 2**20} MiB buckets", model, t_compute,
                              lambda n: (360e9, 10e-6) if n <= 8 else (40e9, 20e-6), bucket))

    header = " | ".join(f"{n}" for n in RANKS)
    for title in dict.fromkeys(s[0] for s in scenarios):
        print(f"### {title}\n")
        print(f"| model | compute ms/step | gradient MB | {header} |")
        print("|---|---:|---:|" + "---:|" * len(RANKS))
        for _, model, t_compute, link, bucket in (s for s in scenarios if s[0] == title):
            params = MODELS[model][0]
            cells = []
            for n in RANKS:
                bw, alpha = link(n)
                exposed = exposed_time(params, t_compute, n, bw, alpha, bucket)
                cells.append(f"{t_compute / (t_compute + exposed):.0%}")
            print(f"| {model} | {1000 * t_compute:.1f} | {4 * params / 1e6:.0f} | " + " | ".join(cells) + " |")
        print()

    print_configurations()


def print_configurations(n=64):
    """The smallest per-GPU work at which each model is predicted at >= 90% on n H100s."""
    link = lambda k: (360e9, 10e-6) if k <= 8 else (40e9, 20e-6)
    print(f"### Configurations predicted at >= 90% on {n} H100s ({n // 8} nodes x 8)\n")
    print("Rows per GPU = micro-batch rows x `--accumulate`; global batch = rows per GPU x GPUs; "
          "buckets as `--bucket-mb auto` chooses them.\n")
    print("| model | gradient MB | compute ms per 128 rows | all-reduce | micro-batch rows | `--accumulate` | "
          "rows per GPU | global batch | predicted efficiency | bucket MiB | 128 rows, no accumulation |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for model, (params, fwd) in MODELS.items():
        rate = gpu_rate(model)
        t_per_row = 3 * fwd / rate
        for wire_bytes, found in zip((4, 2), smallest_configuration(params, t_per_row, n, link)):
            base, _ = configuration_efficiency(params, 128 * t_per_row, 1, n, *link(n), wire_bytes)
            if found is None:
                print(f"| {model} | {4 * params / 1e6:.0f} | {1000 * 128 * t_per_row:.2f} | "
                      f"{'fp32' if wire_bytes == 4 else 'bf16'} | - | - | > {512 * 64} | - | below 90% | - | {base:.0%} |")
                continue
            wire, micro, accumulate, eff, bucket = found
            print(f"| {model} | {4 * params / 1e6:.0f} | {1000 * 128 * t_per_row:.2f} | {wire} | {micro} | {accumulate} | "
                  f"{micro * accumulate} | {n * micro * accumulate} | {eff:.0%} | {bucket / 2**20:.3g} | {base:.0%} |")
    print()


if __name__ == "__main__":
    main()
