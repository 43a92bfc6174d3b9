// Pooling over time.
#pragma once

#include <cstdint>

#include "textscale/engine/layer.h"

namespace textscale::engine {

// Max pooling (N, T, C) -> (N, T_out, C), see Pool1dShape. No parameters. Backward routes each
// gradient to its window's maximum (the earliest one on ties), which forward remembered.
template <typename T>
class MaxPool1d final : public Layer<T> {
 public:
  MaxPool1d(Index kernel, Index stride, Index pad = 0) : kernel_(kernel), stride_(stride), pad_(pad) {}

  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Dims src) override;
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;

 private:
  Pool1dShape shape(Index n) const { return {n, src_.t, src_.c, kernel_, stride_, pad_}; }
  Index kernel_, stride_, pad_;
  Dims src_;
  OpStatePtr state_;
};

// Order-preserving k-max pooling (Kalchbrenner et al. 2014; VDCNN): (N, T, C) -> (N, k, C), per
// sample and channel the k largest values over time, kept in time order (ties: earlier first).
// No parameters; forward remembers the chosen positions for backward.
template <typename T>
class KMaxPool final : public Layer<T> {
 public:
  explicit KMaxPool(Index k) : k_(k) {}

  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Dims src) override;
  void reserve(Index max_batch, const Memory& memory) override;
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;

 private:
  Index k_;
  Dims src_;
  Buffer<std::int32_t> indices_;
};

extern template class MaxPool1d<float>;
extern template class MaxPool1d<double>;
extern template class KMaxPool<float>;
extern template class KMaxPool<double>;

}  // namespace textscale::engine
