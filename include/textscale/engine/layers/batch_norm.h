// Batch normalisation over (N, T) per channel (Ioffe & Szegedy 2015), optionally followed by a ReLU.
// Parameters: `gamma` (C, init 1), `beta` (C, init 0); state: `running_mean` (C, init 0),
// `running_var` (C, init 1), updated in training with `momentum` (PyTorch's convention, unbiased
// variance). Training normalises with the batch statistics, inference with the running ones.
// Backward is the training-mode gradient; it overwrites gamma's and beta's gradients.
//
// `sync`: training statistics over the rows of every data-parallel rank (SyncBatchNorm): the
// per-channel moments are summed over the ranks through Context::allreduce_sum (in forward the
// sums of x and x^2 and the row count, in backward those of dy and dy * x), and normalisation and
// gradients use the global ones, so N ranks compute what one process computes on their rows
// together. Without a group (one process) the same computation runs on the local batch. gamma's
// and beta's gradients stay this rank's share (the gradient all-reduce sums them).
#pragma once

#include <vector>

#include "textscale/engine/layer.h"

namespace textscale::engine {

template <typename T>
class BatchNorm final : public Layer<T> {
 public:
  explicit BatchNorm(bool relu = false, double momentum = 0.1, double epsilon = 1e-5, bool sync = false)
      : relu_(relu), sync_(sync), momentum_(momentum), epsilon_(epsilon) {}

  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Dims src) override;
  void reserve(Index max_batch, const Memory& memory) override;
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;

 private:
  void forward_sync(Context<T>& ctx, Index n, const T* src, T* dst);
  void backward_sync(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src);

  bool relu_, sync_;
  bool synced_ = false;  // the last forward used global statistics
  double momentum_, epsilon_;
  double total_rows_ = 0;                         // sync: rows over all ranks in the last forward
  std::vector<double> moments_, mean_, inv_std_;  // sync: per-channel sums and global statistics
  Dims src_;
  ParamRef gamma_, beta_, running_mean_, running_var_;
  Buffer<T> save_mean_, save_var_;
  OpStatePtr state_;
};

extern template class BatchNorm<float>;
extern template class BatchNorm<double>;

}  // namespace textscale::engine
