// The reference backend with bf16 rounding where a bf16 backend rounds, for the bf16 tests of
// the oneDNN and CUDA backends. Round to nearest even, as oneDNN's and CUDA's conversions do.
//
// Bf16Reference<T> rounds the operands of the convolutions' and dense layers' products (source,
// weights, incoming gradient) to bf16 and sums exactly in T: the oneDNN backend's bf16 scheme,
// whose results are fp32. The one-hot layer is not rounded: both backends gather fp32 weights,
// and their fused first block sums its weight gradient in fp32 (only the CUDA backend's unfused
// one-hot weight gradient, --onehot-fusion off, rounds its incoming gradient to bf16). With RoundResults, the
// convolutions' results are rounded to bf16 too (forward before the bias, the data and weight gradients): the CUDA
// backend's scheme, whose cuDNN bf16 convolutions write bf16. Bias gradients are summed from the unrounded incoming
// gradient in both, as both backends do.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "textscale/engine/reference_backend.h"

namespace textscale::testing {

using engine::Conv1dShape;
using engine::Index;
using engine::LinearShape;
using engine::OpStatePtr;

// The inputs here are finite.
inline double round_to_bf16(double x) {
  const auto f = static_cast<float>(x);
  std::uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof bits);
  bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
  float rounded = 0;
  std::memcpy(&rounded, &bits, sizeof rounded);
  return rounded;
}

template <typename T>
std::vector<T> rounded(const T* x, Index count) {
  std::vector<T> r(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = static_cast<T>(round_to_bf16(static_cast<double>(x[i])));
  return r;
}

template <typename T, bool RoundResults = false>
class Bf16Reference final : public engine::ReferenceBackend<T> {
 public:
  using Base = engine::ReferenceBackend<T>;
  void conv1d_forward(OpStatePtr& state, const Conv1dShape& s, const T* src, const T* weights, const T* bias, T* dst,
                      bool relu) override {
    if (!RoundResults) {
      Base::conv1d_forward(state, s, rounded(src, s.src().count()).data(), rounded(weights, s.weights_count()).data(),
                           bias, dst, relu);
      return;
    }
    Base::conv1d_forward(state, s, rounded(src, s.src().count()).data(), rounded(weights, s.weights_count()).data(),
                         nullptr, dst, false);
    for (Index r = 0; r < s.n * s.t_out(); ++r)
      for (Index c = 0; c < s.c_out; ++c) {
        T& y = dst[r * s.c_out + c];
        y = static_cast<T>(round_to_bf16(static_cast<double>(y))) + (bias ? bias[c] : T{0});
        if (relu) y = std::max(y, T{0});
      }
  }
  void conv1d_backward_data(OpStatePtr& state, const Conv1dShape& s, const T* diff_dst, const T* weights,
                            T* diff_src) override {
    Base::conv1d_backward_data(state, s, rounded(diff_dst, s.dst().count()).data(),
                               rounded(weights, s.weights_count()).data(), diff_src);
    if (RoundResults) round_in_place(diff_src, s.src().count());
  }
  void conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& s, const T* src, const T* diff_dst,
                               T* diff_weights, T* diff_bias) override {
    Base::conv1d_backward_weights(state, s, rounded(src, s.src().count()).data(),
                                  rounded(diff_dst, s.dst().count()).data(), diff_weights, nullptr);
    if (RoundResults) round_in_place(diff_weights, s.weights_count());
    if (diff_bias) bias_gradient(s.n * s.t_out(), s.c_out, diff_dst, diff_bias);
  }
  void linear_forward(OpStatePtr& state, const LinearShape& s, const T* src, const T* weights, const T* bias, T* dst,
                      bool relu) override {
    Base::linear_forward(state, s, rounded(src, s.n * s.in).data(), rounded(weights, s.in * s.out).data(), bias, dst,
                         relu);
  }
  void linear_backward_data(OpStatePtr& state, const LinearShape& s, const T* diff_dst, const T* weights,
                            T* diff_src) override {
    Base::linear_backward_data(state, s, rounded(diff_dst, s.n * s.out).data(), rounded(weights, s.in * s.out).data(),
                               diff_src);
  }
  void linear_backward_weights(OpStatePtr& state, const LinearShape& s, const T* src, const T* diff_dst,
                               T* diff_weights, T* diff_bias) override {
    Base::linear_backward_weights(state, s, rounded(src, s.n * s.in).data(), rounded(diff_dst, s.n * s.out).data(),
                                  diff_weights, nullptr);
    if (diff_bias) bias_gradient(s.n, s.out, diff_dst, diff_bias);
  }

 private:
  static void round_in_place(T* x, Index count) {
    for (Index i = 0; i < count; ++i) x[i] = static_cast<T>(round_to_bf16(static_cast<double>(x[i])));
  }
  // The column sums of the unrounded (rows, c) incoming gradient.
  static void bias_gradient(Index rows, Index c, const T* diff_dst, T* diff_bias) {
    std::fill(diff_bias, diff_bias + c, T{0});
    for (Index r = 0; r < rows; ++r)
      for (Index j = 0; j < c; ++j) diff_bias[j] += diff_dst[r * c + j];
  }
};

}  // namespace textscale::testing
