// Convolution layers.
#pragma once

#include "textscale/engine/layer.h"

namespace textscale::engine {

// 1-D convolution (N, T, C_in) -> (N, T_out, C_out), optionally followed by a fused ReLU.
// Parameters: `weights` (C_out, C_in, K), `bias` (C_out) unless disabled.
// Backward: diff_src from weights; weights/bias gradients overwritten. With the fused ReLU, dst (the
// rectified output) masks diff_dst first.
template <typename T>
class Conv1d final : public Layer<T> {
 public:
  struct Options {
    Index out = 0, kernel = 1, stride = 1, pad = 0;
    bool bias = true, relu = false;
    Init init = Init::constant(0), bias_init = Init::constant(0);
  };
  explicit Conv1d(Options options) : options_(options) {}

  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Dims src) override;
  void reserve(Index max_batch, const Memory& memory) override;
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;
  [[nodiscard]] double forward_macs() const override;

 private:
  Conv1dShape shape(Index n) const;
  Options options_;
  Dims src_;
  ParamRef weights_, bias_;
  OpStatePtr forward_state_, data_state_, weights_state_;
  Buffer<T> masked_;  // diff_dst after the fused ReLU's mask
};

// Convolution over one-hot character codes (Crepe's first layer), computed as a gather of weight
// columns: codes (N, T) -> (N, T - K + 1, C_out), optionally with a fused ReLU. Reads character
// codes only (a batch of word ids is an InputError).
// Parameters: `weights` (C_out, A, K) for an alphabet of A symbols (code 0 = all-zero column),
// `bias` (C_out). Equal to Conv1d on the explicit one-hot (N, T, A) input.
// forward_macs() counts the dense convolution over the one-hot input (the FLOPs a dense
// implementation would spend), not the far fewer additions the gather performs.
// With a `pool` window (and the ReLU), max pooling over time follows in the same operation
// (Backend::onehot_conv1d_relu_pool_forward): the output is (N, T_pool, C_out), and the
// convolution's output, three times as large for Crepe, is never stored.
template <typename T>
class OneHotConv1d final : public InputLayer<T> {
 public:
  struct Pool {
    Index kernel = 0, stride = 0;  // 0: no pooling
  };
  OneHotConv1d(Index alphabet, Index out, Index kernel, bool relu, Init init, Init bias_init, Pool pool = {})
      : alphabet_(alphabet), out_(out), kernel_(kernel), relu_(relu), init_(init), bias_init_(bias_init), pool_(pool) {}

  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Index length) override;
  [[nodiscard]] IdType ids() const override { return IdType::characters; }
  void forward(Context<T>& ctx, const InputBatch& in, T* dst) override;
  void backward(Context<T>& ctx, const InputBatch& in, const T* dst, T* diff_dst) override;
  [[nodiscard]] double forward_macs() const override;

 private:
  Conv1dShape shape(Index n) const { return {n, length_, alphabet_, out_, kernel_, 1, 0}; }
  OneHotPoolShape pooled_shape(Index n) const { return {shape(n), pool_.kernel, pool_.stride}; }
  [[nodiscard]] bool pooled() const { return pool_.kernel > 0; }
  Index alphabet_, out_, kernel_, length_ = 0;
  bool relu_;
  Init init_, bias_init_;
  Pool pool_;
  ParamRef weights_, bias_;
  OpStatePtr forward_state_, weights_state_;
};

extern template class Conv1d<float>;
extern template class Conv1d<double>;
extern template class OneHotConv1d<float>;
extern template class OneHotConv1d<double>;

}  // namespace textscale::engine
