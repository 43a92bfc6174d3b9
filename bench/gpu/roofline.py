#!/usr/bin/env python3
"""The floor of a training step on a GPU, layer by layer: the larger of its arithmetic time at the
measured matrix peak and its memory time at the measured copy bandwidth, and the fraction of the
peak that textscale bench's accounting (dense FLOPs: 3x the forward multiply-adds x 2) could show
if every layer ran at its floor.

This answers whether "40% of the measured peak" is reachable at all for a model and batch before
asking how far an implementation is from it. Counted per layer, for forward and backward:
- FLOPs: 2 per multiply-add of the products (forward, data gradient, weight gradient); element-wise
  work is left out (it is memory-bound). Crepe's first layer is a gather: its arithmetic is the
  additions it does, but bench counts it as a dense convolution over the one-hot input, as PyTorch
  computes it.
- Bytes: each tensor a pass needs read once and each output written once, in fp32, as textscale
  keeps activations in every precision (a ReLU's mask is read from its output; pooling stores a
  byte per output for its winners); weights, their gradients and the optimizer's state (SGD with
  momentum: read weights, gradient and velocity, write weights and velocity). For bf16 the same
  bytes are counted, so its floor is optimistic: textscale converts the convolutions' operands.
Layer shapes follow src/engine/models/ (crepe.cpp, vdcnn.cpp); the script checks its forward
multiply-adds against the published totals bench prints (forward_gflop_per_sample_dense).

usage: roofline.py [--peak OUT/peak.json] [--batch 128 512] [--layers]
"""

import argparse
import json
import sys

F32 = 4


class Layer:
    def __init__(self, name, macs=0, flops=None, fwd_bytes=0, bwd_bytes=0, params=0):
        self.name = name
        self.dense_macs = macs  # per sample, forward: what bench counts
        # per sample, forward + backward: what the GPU must compute
        self.flops = 6 * macs if flops is None else flops
        self.fwd_bytes = fwd_bytes  # per sample
        self.bwd_bytes = bwd_bytes  # per sample
        self.params = params  # per step


def conv(name, t_in, c_in, c_out, k, pad=0, relu=False):
    t_out = t_in + 2 * pad - k + 1
    x, y, w = t_in * c_in * F32, t_out * c_out * F32, c_out * c_in * k
    # forward: x in, y out; backward: dy (and y for a fused ReLU's mask), x in; dx out.
    return Layer(name, macs=t_out * c_out * c_in * k, fwd_bytes=x + y, bwd_bytes=y * (2 if relu else 1) + 2 * x,
                 params=w + c_out), t_out


def batch_norm(name, t, c):
    x = t * c * F32
    # forward: x in, y out; backward: dy, x (and y for the ReLU after it) in, dx out.
    return Layer(name, flops=0, fwd_bytes=2 * x, bwd_bytes=4 * x, params=2 * c)


def pool(name, t_in, c, k, stride, pad=0):
    t_out = (t_in + 2 * pad - k) // stride + 1
    x, y = t_in * c * F32, t_out * c * F32
    # forward: x in, y and a byte of winners out; backward: dy and winners in, dx out.
    return Layer(name, flops=0, fwd_bytes=x + y + t_out * c, bwd_bytes=y + t_out * c + x), t_out


def linear(name, n_in, n_out, relu=False):
    x, y = n_in * F32, n_out * F32
    return Layer(name, macs=n_in * n_out, fwd_bytes=x + y, bwd_bytes=y * (2 if relu else 1) + 2 * x,
                 params=n_in * n_out + n_out)


def crepe_small(length=1014, alphabet=69, features=256, fc=1024, classes=4):
    layers = []
    t_conv = length - 7 + 1
    t = (t_conv - 3) // 3 + 1
    y = t * features * F32
    # The one-hot convolution, its ReLU and the first pooling in one operation: codes in, the
    # pooled output and its winners out; backward: the pooled gradient, winners and codes in.
    layers.append(Layer("one-hot conv k7 + relu + pool", macs=t_conv * features * alphabet * 7,
                        flops=2 * 2 * t_conv * features * 7, fwd_bytes=length + y + t * features,
                        bwd_bytes=y + t * features + length, params=features * alphabet * 7 + features))
    layer, t = conv("conv k7", t, features, features, 7, relu=True)
    layers.append(layer)
    layer, t = pool("pool 3/3", t, features, 3, 3)
    layers.append(layer)
    for i in range(4):
        layer, t = conv(f"conv k3 ({i + 3})", t, features, features, 3, relu=True)
        layers.append(layer)
    layer, t = pool("pool 3/3", t, features, 3, 3)
    layers.append(layer)
    layers.append(linear("fc", t * features, fc, relu=True))
    layers.append(linear("fc", fc, fc, relu=True))
    layers.append(linear("fc", fc, classes))
    return layers


def vdcnn_9(length=1014, alphabet=69, embedding=16, base=64, fc=2048, classes=4, kmax=8):
    layers = [Layer("embedding", flops=0, fwd_bytes=length + length * embedding * F32,
                    bwd_bytes=length * embedding * F32 + length, params=(alphabet + 1) * embedding)]
    layer, t = conv("conv k3 16->64", length, embedding, base, 3, pad=1, relu=True)
    layers.append(layer)
    channels = base
    for stage in range(4):
        out = base << stage
        if stage > 0:
            layer, t = pool("pool 3/2", t, channels, 3, 2, pad=1)
            layers.append(layer)
        for _ in range(2):
            layer, t = conv(f"conv k3 {channels}->{out}", t, channels, out, 3, pad=1)
            layers.append(layer)
            layers.append(batch_norm(f"batch norm {out}", t, out))
            channels = out
    layers.append(Layer("k-max pool", flops=0, fwd_bytes=t * channels * F32 + kmax * channels * (F32 + 4),
                        bwd_bytes=kmax * channels * (F32 + 4) + t * channels * F32))
    layers.append(linear("fc", kmax * channels, fc, relu=True))
    layers.append(linear("fc", fc, fc, relu=True))
    layers.append(linear("fc", fc, classes))
    return layers


MODELS = {"crepe-small": (crepe_small, 0.737132544), "vdcnn-9": (vdcnn_9, 0.605458432)}


def floor(layers, batch, tflops, gbps, show):
    total, dense = 0.0, 0.0
    params = sum(layer.params for layer in layers)
    rows = []
    for layer in layers:
        compute = batch * layer.flops / (tflops * 1e12)
        memory = (batch * (layer.fwd_bytes + layer.bwd_bytes) + 3 * layer.params * F32) / (gbps * 1e9)
        total += max(compute, memory)
        dense += 6 * batch * layer.dense_macs
        rows.append((layer.name, compute, memory))
    optimizer = 5 * params * F32 / (gbps * 1e9)
    total += optimizer
    rows.append(("optimizer (SGD, momentum)", 0.0, optimizer))
    if show:
        print(f"batch {batch}, TF32: per layer, ms (compute / memory; the larger is its floor)", file=sys.stderr)
        for name, compute, memory in rows:
            bound = "  memory-bound" if memory > compute else ""
            print(f"  {name:32s} {1e3 * compute:8.4f} {1e3 * memory:8.4f}{bound}", file=sys.stderr)
    return total, dense


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peak", help="peak.json of a kit run (default: the H200 run in results/)",
                   default=None)
    p.add_argument("--batch", type=int, nargs="+", default=[128, 512])
    p.add_argument("--layers", action="store_true", help="print each layer's two times")
    args = p.parse_args()
    peak = {"device": "NVIDIA H200 (results/gpu-h200/peak.json)", "gemm_tf32_tflops": 406.21034098099415,
            "gemm_bf16_tflops": 780.606868938691, "copy_gb_per_second": 4262.658476081065}
    if args.peak:
        with open(args.peak) as f:
            peak = json.load(f)
    gbps = peak["copy_gb_per_second"]
    print(f"# Step floors on {peak['device']}: TF32 GEMM {peak['gemm_tf32_tflops']:.0f} TFLOP/s, bf16 GEMM "
          f"{peak['gemm_bf16_tflops']:.0f} TFLOP/s, copy {gbps:.0f} GB/s\n")
    print("| model | batch | precision | floor ms/step | samples/s at the floor | of peak at the floor |")
    print("|---|---:|---|---:|---:|---:|")
    for name, (build, published) in MODELS.items():
        layers = build()
        gflop = 2 * sum(layer.dense_macs for layer in layers) / 1e9
        if abs(gflop - published) > 1e-6:
            raise SystemExit(f"{name}: {gflop} GFLOP forward, bench says {published}: the shapes are off")
        for batch in args.batch:
            for precision, key in (("tf32", "gemm_tf32_tflops"), ("bf16", "gemm_bf16_tflops")):
                seconds, dense = floor(layers, batch, peak[key], gbps, args.layers and precision == "tf32")
                print(f"| {name} | {batch} | {precision} | {1e3 * seconds:.3f} | {batch / seconds:,.0f} "
                      f"| {100 * dense / seconds / (peak[key] * 1e12):.0f}% |")


if __name__ == "__main__":
    main()
