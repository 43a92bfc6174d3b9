// A chain of layers, itself a layer: owns the activations between its layers.
//
// Keeps every intermediate activation for backward (N x per-sample size each, for the reserved N)
// and two gradient buffers used alternately, each the size of the largest gradient it holds.
// Residual blocks nest Sequentials.
#pragma once

#include <vector>

#include "textscale/engine/buffer.h"
#include "textscale/engine/layer.h"

namespace textscale::engine {

template <typename T>
class Sequential final : public Layer<T> {
 public:
  void append(LayerPtr<T> layer) { layers_.push_back(std::move(layer)); }
  [[nodiscard]] bool empty() const { return layers_.empty(); }
  [[nodiscard]] const std::vector<LayerPtr<T>>& layers() const { return layers_; }

  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Dims src) override;
  void reserve(Index max_batch, const Memory& memory) override;
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;
  [[nodiscard]] double forward_macs() const override;
  // Per-sample output shape of each layer, after setup.
  [[nodiscard]] const std::vector<Dims>& shapes() const { return shapes_; }
  // Calls Context::on_gradients_ready after each layer's backward (the model's top level only:
  // a nested chain cannot know whether gradients declared after it are final).
  void report_gradients(bool on) { report_gradients_ = on; }
  // Layer i's parameters are named prefix + (first + i) + ".": a chain whose first layers were
  // folded into the layer before it keeps the names (and checkpoints) of the unfolded chain.
  void number_from(std::size_t first) { first_number_ = first; }

 private:
  // Where backward writes layer j's input gradient (j >= 1): diff_a_ for the last layer, then
  // alternately diff_b_ and diff_a_.
  Buffer<T>& diff_src_buffer(std::size_t j);

  std::vector<LayerPtr<T>> layers_;
  std::string prefix_;
  std::vector<Dims> shapes_;           // shapes_[i]: output of layer i
  std::vector<Index> first_gradient_;  // first_gradient_[i]: offset of layer i's first parameter
  bool report_gradients_ = false;
  std::size_t first_number_ = 0;
  std::vector<Buffer<T>> activations_;  // outputs of layers 0 .. L-2 (the last writes to dst)
  Buffer<T> diff_a_, diff_b_;           // each as large as the largest gradient diff_src_buffer puts in it
};

extern template class Sequential<float>;
extern template class Sequential<double>;

}  // namespace textscale::engine
