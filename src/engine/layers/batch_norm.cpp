#include "textscale/engine/layers/batch_norm.h"

#include "textscale/common/error.h"

namespace textscale::engine {

template <typename T>
std::string BatchNorm<T>::describe() const {
  return "batch-norm " + std::to_string(src_.c) + (relu_ ? " +relu" : "");
}

template <typename T>
Dims BatchNorm<T>::setup(ParamStore<T>& params, const std::string& prefix, Dims src) {
  src_ = src;
  gamma_ = params.add(prefix + "gamma", {src.c}, Init::constant(1));
  beta_ = params.add(prefix + "beta", {src.c}, Init::constant(0));
  running_mean_ = params.add_state(prefix + "running_mean", {src.c}, Init::constant(0));
  running_var_ = params.add_state(prefix + "running_var", {src.c}, Init::constant(1));
  save_mean_.resize(static_cast<std::size_t>(src.c));
  save_var_.resize(static_cast<std::size_t>(src.c));
  return src;
}

template <typename T>
void BatchNorm<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  const Dims d{n, src_.t, src_.c};
  ctx.backend->batch_norm_forward(state_, d, src, ctx.params->value(gamma_), ctx.params->value(beta_), dst,
                                  save_mean_.data(), save_var_.data(), ctx.params->value(running_mean_),
                                  ctx.params->value(running_var_), ctx.training, momentum_, epsilon_, relu_);
}

template <typename T>
void BatchNorm<T>::backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) {
  const Dims d{n, src_.t, src_.c};
  if (!diff_src) throw Error("batch norm cannot be the first layer");
  ctx.backend->batch_norm_backward(state_, d, src, dst, diff_dst, ctx.params->value(gamma_), save_mean_.data(),
                                   save_var_.data(), diff_src, ctx.params->grad(gamma_), ctx.params->grad(beta_),
                                   epsilon_, relu_);
}

template class BatchNorm<float>;
template class BatchNorm<double>;

}  // namespace textscale::engine
