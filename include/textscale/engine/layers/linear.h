// Fully connected layer: src (N, I) with I = T * C of the input (flattening is free in the
// (N, T, C) layout) -> dst (N, 1, O), optionally with a fused ReLU.
// Parameters: `weights` (O, I), `bias` (O). Backward overwrites their gradients; with the fused
// ReLU, dst masks diff_dst first.
#pragma once

#include "textscale/engine/layer.h"

namespace textscale::engine {

template <typename T>
class Linear final : public Layer<T> {
 public:
  Linear(Index out, bool relu, Init init, Init bias_init)
      : out_(out), relu_(relu), init_(init), bias_init_(bias_init) {}

  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Dims src) override;
  void reserve(Index max_batch, const Memory& memory) override;
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;
  [[nodiscard]] double forward_macs() const override { return static_cast<double>(in_ * out_); }

 private:
  LinearShape shape(Index n) const { return {n, in_, out_}; }
  Index out_, in_ = 0;
  bool relu_;
  Init init_, bias_init_;
  ParamRef weights_, bias_;
  OpStatePtr forward_state_, data_state_, weights_state_;
  Buffer<T> masked_;
};

extern template class Linear<float>;
extern template class Linear<double>;

}  // namespace textscale::engine
