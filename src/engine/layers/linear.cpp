#include "textscale/engine/layers/linear.h"

namespace textscale::engine {

template <typename T>
std::string Linear<T>::describe() const {
  return "linear " + std::to_string(in_) + "->" + std::to_string(out_) + (relu_ ? " +relu" : "");
}

template <typename T>
Dims Linear<T>::setup(ParamStore<T>& params, const std::string& prefix, Dims src) {
  in_ = src.per_sample();
  weights_ = params.add(prefix + "weights", {out_, in_}, init_);
  bias_ = params.add(prefix + "bias", {out_}, bias_init_);
  return {0, 1, out_};
}

template <typename T>
void Linear<T>::reserve(Index max_batch, const Memory& memory) {
  if (relu_) masked_.resize(static_cast<std::size_t>(max_batch * out_), memory);
}

template <typename T>
void Linear<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  ctx.backend->linear_forward(forward_state_, shape(n), src, ctx.params->value(weights_), ctx.params->value(bias_), dst,
                              relu_);
}

template <typename T>
void Linear<T>::backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) {
  const T* grad = diff_dst;
  if (relu_) {
    ctx.backend->relu_backward(n * out_, dst, diff_dst, masked_.data());
    grad = masked_.data();
  }
  ctx.backend->linear_backward_weights(weights_state_, shape(n), src, grad, ctx.params->grad(weights_),
                                       ctx.params->grad(bias_));
  if (diff_src) ctx.backend->linear_backward_data(data_state_, shape(n), grad, ctx.params->value(weights_), diff_src);
}

template class Linear<float>;
template class Linear<double>;

}  // namespace textscale::engine
