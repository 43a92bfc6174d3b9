#!/usr/bin/python3
"""Times PyTorch's torch.nn.Conv1d alone on Crepe's second layer (256 -> 256 channels, kernel 7,
T 336), forward, at batch 32 and 128: the peer's convolution rate behind its batch-128 Crepe-small
figures in results/speed.md.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/peer_conv.py [--threads 2]
"""
import argparse
import time

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"mkldnn {torch.backends.mkldnn.is_available()}")
    for batch in (32, 128):
        x = torch.randn(batch, 256, 336)
        conv = torch.nn.Conv1d(256, 256, 7)
        with torch.no_grad():
            for _ in range(2):
                conv(x)
            start = time.perf_counter()
            for _ in range(args.repeats):
                conv(x)
            seconds = (time.perf_counter() - start) / args.repeats
        flops = 2 * batch * 330 * 256 * 256 * 7
        print(f"batch {batch}: Crepe conv2 (256->256, k7, T 336) forward {seconds * 1e3:.1f} ms, "
              f"{flops / seconds / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
