// Batch normalisation over (N, T) per channel (Ioffe & Szegedy 2015), optionally followed by a ReLU.
// Parameters: `gamma` (C, init 1), `beta` (C, init 0); state: `running_mean` (C, init 0),
// `running_var` (C, init 1), updated in training with `momentum` (PyTorch's convention, unbiased
// variance). Training normalises with the batch statistics, inference with the running ones.
// Backward is the training-mode gradient; it overwrites gamma's and beta's gradients.
#pragma once

#include "textscale/engine/layer.h"

namespace textscale::engine {

template <typename T>
class BatchNorm final : public Layer<T> {
 public:
  explicit BatchNorm(bool relu = false, double momentum = 0.1, double epsilon = 1e-5)
      : relu_(relu), momentum_(momentum), epsilon_(epsilon) {}

  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Dims src) override;
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;

 private:
  bool relu_;
  double momentum_, epsilon_;
  Dims src_;
  ParamRef gamma_, beta_, running_mean_, running_var_;
  Buffer<T> save_mean_, save_var_;
  OpStatePtr state_;
};

extern template class BatchNorm<float>;
extern template class BatchNorm<double>;

}  // namespace textscale::engine
