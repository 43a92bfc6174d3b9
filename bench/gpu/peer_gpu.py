#!/usr/bin/env python3
"""PyTorch on the GPU: the peer models' training throughput, and the device's measured peaks.

Runs on the lent GPU machine (PyTorch 2.x with CUDA), beside `textscale bench --device cuda`.
The models are bench/peer_models.py's (the same architectures, initialisation and batch shapes
as textscale's), trained exactly as `textscale bench` does: synthetic codes (N, 1014) uniform in
0..69 and labels uniform in 0..classes-1 drawn once, then per step forward, softmax
cross-entropy, backward and torch.optim.SGD (lr 0.01, momentum 0.9, foreach) on one GPU.

--precision: fp32 (TF32 off for matmul and cuDNN), tf32 (TF32 on), bf16 (autocast to bfloat16,
fp32 master weights). --compile: the model under torch.compile (default mode); the first steps
compile and are part of the warm-up.

--model bilstm (a word model) trains the PyTorch BiLSTM of bench/peer_word_models.py on synthetic
rows as `textscale bench --model bilstm` does: ids (N, --length) uniform in 2..--vocab-1, every row
at its full length. That file is optional (see "Hook: the word models' peer" below): without it
the script prints a JSON line with "available": false and the reason, and exits 0.

--peak instead measures the device: an 8192^3 GEMM in bf16 and in TF32 (TFLOP/s, mean of 10 after
3 warm-ups) and a 2 GiB device-to-device copy (GB/s counting bytes read and written).

Prints one JSON line.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from peer_models import CHAR_LENGTH, MODEL_NAMES, NUM_CODES, build_model  # noqa: E402

WORD_MODEL_NAMES = ("bilstm",)
DEVICE = "cuda"


# ---- Hook: the word models' peer --------------------------------------------------------------
# The PyTorch BiLSTM (the same architecture and initialisation as textscale's `bilstm`) lives in
# bench/peer_word_models.py, beside peer_models.py; make-kit.sh packs it when the checkout has it.
# This is the only place that reads it. Used interface: BiLSTM(num_classes=C, vocab_size=V) is an
# nn.Module whose forward(words (N, T) int64, lengths (N,) int64) returns logits (N, C).
# Without the file, or when it does not import or build through that interface, the peer is "not
# available": a JSON line says so and why, and the kit goes on.
def build_word_peer(num_classes, vocab_size):
    """(model, None), or (None, the reason the peer is not available)."""
    try:
        from peer_word_models import BiLSTM
    except Exception as error:  # the file is absent (ImportError), or fails as it is imported
        return None, f"bench/peer_word_models.py: {type(error).__name__}: {error}"
    try:
        return BiLSTM(num_classes=num_classes, vocab_size=vocab_size), None
    except Exception as error:
        return None, f"peer_word_models.BiLSTM(num_classes, vocab_size): {type(error).__name__}: {error}"
# ------------------------------------------------------------------------------------------------


def set_precision(precision):
    tf32 = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def timed(fn, warmup, steps):
    return windows(fn, warmup, steps, 1)[0]


def windows(fn, warmup, steps, repeats):
    """Seconds of each of `repeats` windows of `steps` calls, each ending with a synchronize
    (textscale bench --repeats times the same way)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds


def peak():
    out = {"device": torch.cuda.get_device_name(), "torch_version": torch.__version__}
    n = 8192
    for name, dtype, tf32 in (("bf16", torch.bfloat16, False), ("tf32", torch.float32, True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        seconds = timed(lambda: a @ b, 3, 10)
        out[f"gemm_{name}_tflops"] = 2 * n ** 3 * 10 / seconds / 1e12
        del a, b
    src = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), 3, 10)
    out["copy_gb_per_second"] = 2 * src.numel() * 10 / seconds / 1e9
    return out


def model_and_inputs(args):
    """(model on the device, its inputs as a tuple), or (None, the reason the peer is not available).
    Character models: codes (N, 1014) uniform in 0..69. Word models: ids (N, --length) uniform in
    2..--vocab-1 (no padding, no unknown word) and every row's length --length, as textscale bench."""
    if args.model not in WORD_MODEL_NAMES:
        model = build_model(args.model, args.classes).to(DEVICE)
        codes = torch.randint(0, NUM_CODES, (args.batch_size, CHAR_LENGTH), dtype=torch.uint8, device=DEVICE)
        return model, (codes,)
    model, why_not = build_word_peer(args.classes, args.vocab)
    if model is None:
        return None, why_not
    words = torch.randint(2, args.vocab, (args.batch_size, args.length), dtype=torch.int64, device=DEVICE)
    lengths = torch.full((args.batch_size,), args.length, dtype=torch.int64, device=DEVICE)
    return model.to(DEVICE), (words, lengths)


def not_available(args, why):
    """The JSON line for a peer that is not there: the summary shows "peer not available"."""
    print(f"peer_gpu.py: peer not available for {args.model}: {why}", file=sys.stderr)
    return {"implementation": "pytorch-compile" if args.compile else "pytorch-eager", "model": args.model,
            "batch": args.batch_size, "precision": args.precision, "available": False, "reason": why}


def train(args):
    set_precision(args.precision)
    torch.manual_seed(args.seed)
    model, inputs = model_and_inputs(args)
    if model is None:
        return not_available(args, inputs)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, foreach=True)
    labels = torch.randint(0, args.classes, (args.batch_size,), device=DEVICE)
    forward = torch.compile(model) if args.compile else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    last = {}

    def step():
        with autocast:
            loss = F.cross_entropy(forward(*inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        last["loss"] = loss  # read after the timing (reading it here would wait for the device)

    model.train()
    rates = [args.batch_size * args.steps / s for s in windows(step, args.warmup, args.steps, args.repeats)]
    out = {
        "implementation": "pytorch-compile" if args.compile else "pytorch-eager",
        "model": args.model,
        "batch": args.batch_size,
        "precision": args.precision,
        "train_samples_per_second": statistics.median(rates),
        "last_train_loss": float(last["loss"].detach()),
        "peak_memory_mib": torch.cuda.max_memory_allocated() / 2 ** 20,
        "device": torch.cuda.get_device_name(),
        "torch_version": torch.__version__,
    }
    if args.model in WORD_MODEL_NAMES:
        out["length"], out["vocab"] = args.length, args.vocab
    if args.repeats > 1:
        out["train_samples_per_second_windows"] = rates
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=MODEL_NAMES + WORD_MODEL_NAMES, default="crepe-small")
    p.add_argument("--length", type=int, default=300, help="word models: words a row (all real)")
    p.add_argument("--vocab", type=int, default=50000, help="word models: vocabulary size")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="tf32")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=1, help="time --steps this many times; report the median")
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--peak", action="store_true", help="measure the GEMM and copy peaks instead")
    args = p.parse_args()
    print(json.dumps(peak() if args.peak else train(args)), flush=True)


if __name__ == "__main__":
    main()
