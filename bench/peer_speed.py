#!/usr/bin/python3
"""Training and inference throughput of a PyTorch peer model (bench/peer_*models.py) on CPU.

Inputs are synthetic, drawn once with a fixed seed and reused for every step: labels uniform in
0..classes-1 and
- character models: codes uniform in 0..69, shape (batch, 1014);
- word models (bilstm): word ids uniform in 2..V-1 (real words, no <unk>), shape (batch, W), every
  row W real words (word_lengths = W); V = --vocab-size (50,000), W = --word-length (300),
  E = --embed-dim (200), H = --hidden (100), --pooling (last); dropout 0.5. The embedding's
  gradient is dense (the whole (V, E) table every step, as SGD then updates it).
After --warmup untimed steps, --steps steps are timed for
- training: forward, softmax cross-entropy, backward and a torch.optim.SGD step (lr 0.01,
  momentum 0.9), model in train mode;
- inference: forward only, model in eval mode under torch.no_grad().
With --precision bf16 the forward passes (and the loss) run under torch.autocast("cpu",
dtype=torch.bfloat16), PyTorch's mixed precision: convolutions and linear layers in bf16, the
weights and optimizer in fp32, as textscale's --precision bf16.
Prints one JSON line:
  {"model", "batch", "threads", "precision", ["vocab_size", "word_length", "embed_dim", "hidden",
   "pooling" for word models,] "train_samples_per_second", "infer_samples_per_second",
   "peak_rss_mib" (getrusage ru_maxrss of this process), "torch_version", "blas"}
where "blas" is torch's BLAS_INFO build setting and the BLAS library actually mapped into the
process (read from /proc/self/maps; on Debian the libblas.so.3 alternative).

The C++-vs-PyTorch benchmark script runs this with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
in its environment; that is the caller's job, this script leaves the environment as it finds it.

Usage (with /usr/bin/python3):

    /usr/bin/python3 bench/peer_speed.py --model vdcnn-9 --batch-size 128 --threads 2 \\
        --warmup 3 --steps 10 --classes 4 [--shortcut] [--precision bf16]
    /usr/bin/python3 bench/peer_speed.py --model bilstm --batch-size 32 --threads 2 \\
        --vocab-size 50000 --word-length 300 --embed-dim 200 --hidden 100
"""

import argparse
import json
import os
import re
import resource
import time

import torch
import torch.nn.functional as F

from peer_models import CHAR_LENGTH, MODEL_NAMES, NUM_CODES, build_model
from peer_word_models import POOLINGS, WORD_MODEL_NAMES, build_word_model


def blas_description():
    """torch's BLAS build setting and the BLAS/LAPACK shared objects mapped into this process."""
    match = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    build = match.group(1) if match else "unknown"
    mapped = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                name = os.path.basename(path)
                if re.search(r"blas|mkl_|lapack|blis", name, re.IGNORECASE):
                    mapped.add(os.path.realpath(path))
    except OSError:
        pass
    return f"BLAS_INFO={build}; loaded: {', '.join(sorted(mapped)) or 'none found'}"


def time_steps(step, warmup, steps):
    """Seconds taken by `steps` calls of step() after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=MODEL_NAMES + WORD_MODEL_NAMES)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before each measurement")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--shortcut", action="store_true", help="VDCNN with shortcut connections")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: forward passes under torch.autocast (CPU, bfloat16)")
    words = p.add_argument_group("word models (bilstm)")
    words.add_argument("--vocab-size", type=int, default=50000, help="V")
    words.add_argument("--word-length", type=int, default=300, help="W, every row's real words")
    words.add_argument("--embed-dim", type=int, default=200, help="E")
    words.add_argument("--hidden", type=int, default=100, help="H per direction")
    words.add_argument("--pooling", choices=POOLINGS, default="last")
    args = p.parse_args()
    if min(args.batch_size, args.threads, args.steps, args.classes) < 1 or args.warmup < 0:
        p.error("--batch-size, --threads, --steps and --classes must be positive")
    word_model = args.model in WORD_MODEL_NAMES
    if word_model and (min(args.word_length, args.embed_dim, args.hidden) < 1 or args.vocab_size < 3):
        p.error("--word-length, --embed-dim and --hidden must be positive, --vocab-size above 2")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if word_model:
        model = build_word_model(args.model, args.classes, args.vocab_size, args.embed_dim,
                                 args.hidden, args.pooling)
        ids = torch.randint(2, args.vocab_size, (args.batch_size, args.word_length),
                            dtype=torch.int32)
        lengths = torch.full((args.batch_size,), args.word_length, dtype=torch.int32)
        inputs = (ids, lengths)
    else:
        model = build_model(args.model, args.classes, shortcut=args.shortcut)
        inputs = (torch.randint(0, NUM_CODES, (args.batch_size, CHAR_LENGTH), dtype=torch.uint8),)
    labels = torch.randint(0, args.classes, (args.batch_size,))
    optimizer = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=0.01,
                                momentum=0.9)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def train_step():
        with autocast():
            loss = F.cross_entropy(model(*inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step():
        with torch.no_grad(), autocast():
            model(*inputs)

    model.train()
    train_seconds = time_steps(train_step, args.warmup, args.steps)
    model.eval()
    infer_seconds = time_steps(infer_step, args.warmup, args.steps)

    samples = args.batch_size * args.steps
    record = {
        "model": args.model + ("+shortcut" if args.shortcut else ""),
        "batch": args.batch_size,
        "threads": args.threads,
        "precision": args.precision,
    }
    if word_model:
        record.update({"vocab_size": args.vocab_size, "word_length": args.word_length,
                       "embed_dim": args.embed_dim, "hidden": args.hidden,
                       "pooling": args.pooling})
    print(json.dumps({
        **record,
        "train_samples_per_second": samples / train_seconds,
        "infer_samples_per_second": samples / infer_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch_version": torch.__version__,
        "blas": blas_description(),
    }))


if __name__ == "__main__":
    main()
