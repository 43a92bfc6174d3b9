#!/usr/bin/python3
"""Data-parallel training throughput of a PyTorch peer model under DistributedDataParallel (gloo).

Starts --world processes on this machine (torch.multiprocessing, gloo over the loopback
interface), each with --threads intra-op threads, trains the bench/peer_models.py model with
SGD (lr 0.01, momentum 0.9) on a global batch of --batch-size rows (each rank takes its share,
as textscale does), and after --warmup untimed steps times --steps steps. Inputs: the first rows
of a textscale HDF5 training file (--train), or synthetic codes when none is given. With --world 1
the model runs without DDP. Prints one JSON line from rank 0:
  {"model", "world", "threads", "batch", "train_samples_per_second", "seconds_per_step",
   "torch_version"}

The scaling benchmark (bench/scaling_speed.sh) runs this with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE
unset; this script leaves the environment as it finds it.

    /usr/bin/python3 bench/peer_ddp.py --model crepe-small --world 2 --threads 1 --batch-size 128
"""

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from peer_models import CHAR_LENGTH, MODEL_NAMES, NUM_CODES, build_model


def load_rows(path, rows, classes):
    if path:
        import h5py
        with h5py.File(path, "r") as f:
            chars = f["chars"][:rows]
            labels = f["labels"][:rows].astype(np.int64)
        return torch.from_numpy(chars), torch.from_numpy(labels)
    gen = torch.Generator().manual_seed(1)
    chars = torch.randint(0, NUM_CODES, (rows, CHAR_LENGTH), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, classes, (rows,), generator=gen)
    return chars, labels


def worker(rank, args):
    torch.set_num_threads(args.threads)
    if args.world > 1:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(args.port)
        dist.init_process_group("gloo", rank=rank, world_size=args.world)
    torch.manual_seed(args.seed)
    model = build_model(args.model, args.classes)
    if args.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    steps = args.warmup + args.steps
    chars, labels = load_rows(args.train, args.batch_size * steps, args.classes)
    base, extra = divmod(args.batch_size, args.world)
    first = rank * base + min(rank, extra)
    count = base + (1 if rank < extra else 0)
    model.train()
    start = None
    for step in range(steps):
        if step == args.warmup:
            if args.world > 1:
                dist.barrier()
            start = time.perf_counter()
        rows = slice(step * args.batch_size + first, step * args.batch_size + first + count)
        loss = F.cross_entropy(model(chars[rows]), labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if args.world > 1:
        dist.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        print(json.dumps({
            "model": args.model, "world": args.world, "threads": args.threads, "batch": args.batch_size,
            "train_samples_per_second": args.batch_size * args.steps / seconds,
            "seconds_per_step": seconds / args.steps, "torch_version": torch.__version__}), flush=True)
    if args.world > 1:
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128, help="global batch")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--train", help="textscale HDF5 training file (default: synthetic codes)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--port", type=int, default=29517)
    args = p.parse_args()
    if args.world == 1:
        worker(0, args)
    else:
        mp.spawn(worker, args=(args,), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
