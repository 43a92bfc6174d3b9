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

// A recurrent layer (Backend::rnn_forward) over the real time steps of each row of src (N, T, C_in).
// Cells: LSTM (gates i, f, g, o). Each direction d (0: forward in time; 1, when bidirectional:
// backward in time) has its own weights, canonical layout (PyTorch's nn.LSTM, one bias):
//   weights: for d = 0 .. D-1, W_x[d] (G*H, C_in) then W_h[d] (G*H, H), each row-major, rows in
//            gate order (gate k is rows k*H .. k*H+H-1);
//   bias:    (D, G*H) (PyTorch's bias_ih + bias_hh).
// dst (N, T, D*H): direction d's hidden state in channels d*H .. d*H+H-1.
enum class RnnCell { lstm };
struct RnnShape {
  RnnCell cell = RnnCell::lstm;
  Index n = 0, t = 0, c_in = 0, hidden = 0;
  bool bidirectional = false;
  [[nodiscard]] Index directions() const { return bidirectional ? 2 : 1; }
  [[nodiscard]] Index gates() const { return 4; }
  [[nodiscard]] Dims src() const { return {n, t, c_in}; }
  [[nodiscard]] Dims dst() const { return {n, t, directions() * hidden}; }
  // One direction's weights: W_x then W_h.
  [[nodiscard]] Index direction_weights() const { return gates() * hidden * (c_in + hidden); }
  [[nodiscard]] Index weights_count() const { return directions() * direction_weights(); }
  [[nodiscard]] Index bias_count() const { return directions() * gates() * hidden; }
  bool operator==(const RnnShape&) const = default;
};

// Pooling over each row's real time steps [0, L): src (N, T, C) -> dst (N, C).
//  - last: the state a recurrent layer ends in. The C channels are `directions` blocks; block 0
//    (forward in time) takes step L-1, block 1 (backward in time, which ends at step 0) step 0.
//  - max: per channel the largest value (ties: the earliest step);
//  - mean: the sum over the L steps divided by L.
// A row with L = 0 pools to 0 in every mode (and passes no gradient back).
enum class SequencePooling { last, max, mean };

}  // namespace textscale::engine
