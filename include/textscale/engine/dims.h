// Shapes of the activations and of the operations the backends implement.
//
// Activations are stored time-major within a sample, channels fastest: a tensor of `Dims{n, t, c}`
// holds element (i, j, k) at `(i * t + j) * c + k` — (N, T, C), "channels last". Dense features are
// `Dims{n, 1, c}`. Flattening (N, T, C) to (N, 1, T*C) is free. Sequence models read the same
// layout (a row of T time steps of C features), which is why it is the canonical one.
#pragma once

#include <cstdint>
#include <string>

namespace textscale::engine {

using Index = std::int64_t;

struct Dims {
  Index n = 0;  // batch
  Index t = 1;  // time (characters, words)
  Index c = 0;  // channels / features

  [[nodiscard]] Index per_sample() const { return t * c; }
  [[nodiscard]] Index count() const { return n * t * c; }
  [[nodiscard]] std::string str() const;
  bool operator==(const Dims&) const = default;
};

// 1-D convolution: src (N, T_in, C_in), weights (C_out, C_in, K), bias (C_out), dst (N, T_out, C_out),
// dst[n, t, o] = bias[o] + sum_{c, k} weights[o, c, k] * src[n, t * stride + k - pad, c] (zero outside).
struct Conv1dShape {
  Index n = 0, t_in = 0, c_in = 0, c_out = 0, kernel = 1, stride = 1, pad = 0;

  [[nodiscard]] Index t_out() const { return (t_in + 2 * pad - kernel) / stride + 1; }
  [[nodiscard]] Dims src() const { return {n, t_in, c_in}; }
  [[nodiscard]] Dims dst() const { return {n, t_out(), c_out}; }
  [[nodiscard]] Index weights_count() const { return c_out * c_in * kernel; }
  bool operator==(const Conv1dShape&) const = default;
};

// 1-D max pooling over time, per channel: dst[n, t, c] = max_{k < K, 0 <= t*stride+k-pad < T_in}
// src[n, t * stride + k - pad, c]. Padding never wins (it is -infinity).
struct Pool1dShape {
  Index n = 0, t_in = 0, c = 0, kernel = 1, stride = 1, pad = 0;

  [[nodiscard]] Index t_out() const { return (t_in + 2 * pad - kernel) / stride + 1; }
  [[nodiscard]] Dims src() const { return {n, t_in, c}; }
  [[nodiscard]] Dims dst() const { return {n, t_out(), c}; }
  bool operator==(const Pool1dShape&) const = default;
};

// The one-hot convolution `conv` (stride 1, no padding) with a ReLU, then max pooling over time
// with window `pool_kernel` and stride `pool_stride` (no padding): Crepe's first block.
struct OneHotPoolShape {
  Conv1dShape conv;
  Index pool_kernel = 1, pool_stride = 1;

  [[nodiscard]] Pool1dShape pool() const { return {conv.n, conv.t_out(), conv.c_out, pool_kernel, pool_stride, 0}; }
  [[nodiscard]] Dims dst() const { return pool().dst(); }
  bool operator==(const OneHotPoolShape&) const = default;
};

// Dense layer: src (N, I), weights (O, I), bias (O), dst (N, O) = src * weights^T + bias.
struct LinearShape {
  Index n = 0, in = 0, out = 0;
  bool operator==(const LinearShape&) const = default;
};

}  // namespace textscale::engine
