#!/usr/bin/env python3
"""Per-tensor view of a bench/trajectory.sh run directory: for each parameter tensor, the size of
textscale's weight change since the start, the distances of PyTorch's and the control's final
weights to textscale's (relative to that change) and to each other, and how many weights each
run left exactly unchanged (a gradient of exactly zero under Adam or SGD without weight decay).

    /usr/bin/python3 bench/trajectory_tensors.py runs/trajectory/RUN
"""
import sys

import h5py
import numpy as np


def main():
    run = sys.argv[1]
    theirs = np.load(f"{run}/pytorch-weights.npz")
    with h5py.File(f"{run}/textscale/checkpoint.h5") as f, h5py.File(f"{run}/control/checkpoint.h5") as g, \
            h5py.File(f"{run}/start/checkpoint.h5") as s:
        print(f"{'tensor':14} {'size':>9} {'|change|':>9} {'pt-ts':>8} {'ctl-ts':>8} {'pt-ctl':>8} "
              f"{'unchanged: ts':>13} {'ctl':>9} {'pt':>9}")
        for name in theirs.files:
            ours, control = f["parameters"][name][...], g["parameters"][name][...]
            start, peer = s["parameters"][name][...], theirs[name]
            change = np.linalg.norm(ours - start) or 1.0
            rel = lambda a, b: np.linalg.norm(a - b) / change
            same = lambda a: int((a == start).sum())
            print(f"{name:14} {ours.size:>9} {change:>9.2e} {rel(peer, ours):>8.1e} {rel(control, ours):>8.1e} "
                  f"{rel(peer, control):>8.1e} {same(ours):>13} {same(control):>9} {same(peer):>9}")


if __name__ == "__main__":
    main()
