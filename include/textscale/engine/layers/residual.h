// A residual block (He et al. 2016; VDCNN's optional shortcuts): dst = body(src) + shortcut(src),
// where the shortcut is the identity when `shortcut` is empty (the body must then keep the shape)
// or a projection (VDCNN: 1x1 convolution + batch norm) when channels change.
// Backward: diff_src = body'(diff_dst) + shortcut'(diff_dst).
#pragma once

#include "textscale/engine/layers/sequential.h"

namespace textscale::engine {

template <typename T>
class Residual final : public Layer<T> {
 public:
  Residual(std::unique_ptr<Sequential<T>> body, std::unique_ptr<Sequential<T>> shortcut)
      : body_(std::move(body)), shortcut_(std::move(shortcut)) {}

  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Dims src) override;
  void reserve(Index max_batch, const Memory& memory) override;
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;
  [[nodiscard]] double forward_macs() const override;
  [[nodiscard]] const Sequential<T>& body() const { return *body_; }

 private:
  std::unique_ptr<Sequential<T>> body_, shortcut_;
  Dims src_, dst_;
  Buffer<T> body_out_, shortcut_out_, diff_tmp_;
};

extern template class Residual<float>;
extern template class Residual<double>;

}  // namespace textscale::engine
