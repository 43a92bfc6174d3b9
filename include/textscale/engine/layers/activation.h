// Element-wise layers without parameters.
#pragma once

#include "textscale/engine/layer.h"

namespace textscale::engine {

// max(0, x). Backward uses dst (the rectified output): diff_src = diff_dst where dst > 0.
template <typename T>
class Relu final : public Layer<T> {
 public:
  [[nodiscard]] std::string describe() const override { return "relu"; }
  Dims setup(ParamStore<T>&, const std::string&, Dims src) override {
    size_ = src.per_sample();
    return src;
  }
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;

 private:
  Index count(Index n) const { return n * size_; }
  Index size_ = 0;
};

// Inverted dropout with drop probability p, active in training only (identity in inference).
// The mask of each step comes from (run seed, layer id, global step) through dropout_mask.h, so it
// is the same on every backend and after a resume. `id` must be unique within the model.
template <typename T>
class Dropout final : public Layer<T> {
 public:
  Dropout(double p, Index id) : p_(p), id_(id) {}
  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>&, const std::string&, Dims src) override;
  void reserve(Index max_batch, const Memory& memory) override;
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;

 private:
  double p_;
  Index id_, size_ = 0;
  bool masked_ = false;  // whether the last forward applied a mask
  Buffer<T> mask_;
};

extern template class Relu<float>;
extern template class Relu<double>;
extern template class Dropout<float>;
extern template class Dropout<double>;

}  // namespace textscale::engine
