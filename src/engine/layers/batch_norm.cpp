#include "textscale/engine/layers/batch_norm.h"

#include <algorithm>
#include <cmath>

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
  return src;
}

template <typename T>
void BatchNorm<T>::reserve(Index /*max_batch*/, const Memory& memory) {
  save_mean_.resize(static_cast<std::size_t>(src_.c), memory);
  save_var_.resize(static_cast<std::size_t>(src_.c), memory);
}

template <typename T>
void BatchNorm<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  synced_ = sync_ && ctx.training;
  if (synced_) return forward_sync(ctx, n, src, dst);
  const Dims d{n, src_.t, src_.c};
  ctx.backend->batch_norm_forward(state_, d, src, ctx.params->value(gamma_), ctx.params->value(beta_), dst,
                                  save_mean_.data(), save_var_.data(), ctx.params->value(running_mean_),
                                  ctx.params->value(running_var_), ctx.training, momentum_, epsilon_, relu_);
}

template <typename T>
void BatchNorm<T>::backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) {
  const Dims d{n, src_.t, src_.c};
  if (!diff_src) throw Error("batch norm cannot be the first layer");
  if (synced_) return backward_sync(ctx, n, src, dst, diff_dst, diff_src);
  ctx.backend->batch_norm_backward(state_, d, src, dst, diff_dst, ctx.params->value(gamma_), save_mean_.data(),
                                   save_var_.data(), diff_src, ctx.params->grad(gamma_), ctx.params->grad(beta_),
                                   epsilon_, relu_);
}

template <typename T>
void BatchNorm<T>::forward_sync(Context<T>& ctx, Index n, const T* src, T* dst) {
  const Index c = src_.c, rows = n * src_.t;
  moments_.assign(static_cast<std::size_t>(2 * c + 1), 0.0);
  ctx.backend->channel_sums(rows, c, src, nullptr, moments_.data(), moments_.data() + c);
  // The loops below write the statistics from the host: the device must be idle.
  ctx.backend->memory().synchronize();
  moments_[static_cast<std::size_t>(2 * c)] = static_cast<double>(rows);
  if (ctx.allreduce_sum) (*ctx.allreduce_sum)(moments_.data(), 2 * c + 1);
  const double count = moments_[static_cast<std::size_t>(2 * c)];
  if (count < 1) throw Error("synchronised batch norm over an empty batch");
  total_rows_ = count;
  mean_.resize(static_cast<std::size_t>(c));
  inv_std_.resize(static_cast<std::size_t>(c));
  T* running_mean = ctx.params->value(running_mean_);
  T* running_var = ctx.params->value(running_var_);
  for (Index k = 0; k < c; ++k) {
    const auto i = static_cast<std::size_t>(k);
    const double mean = moments_[i] / count;
    const double var = std::max(0.0, moments_[static_cast<std::size_t>(c + k)] / count - mean * mean);
    mean_[i] = mean;
    inv_std_[i] = 1.0 / std::sqrt(var + epsilon_);
    save_mean_.data()[k] = static_cast<T>(mean);
    save_var_.data()[k] = static_cast<T>(var);
    const double unbiased = count > 1 ? var * count / (count - 1) : var;
    running_mean[k] = static_cast<T>((1 - momentum_) * static_cast<double>(running_mean[k]) + momentum_ * mean);
    running_var[k] = static_cast<T>((1 - momentum_) * static_cast<double>(running_var[k]) + momentum_ * unbiased);
  }
  // Normalise with the global statistics: the inference-mode kernel, given them as "running".
  const Dims d{n, src_.t, c};
  ctx.backend->batch_norm_forward(state_, d, src, ctx.params->value(gamma_), ctx.params->value(beta_), dst, nullptr,
                                  nullptr, save_mean_.data(), save_var_.data(), false, momentum_, epsilon_, relu_);
}

template <typename T>
void BatchNorm<T>::backward_sync(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) {
  const Index c = src_.c, rows = n * src_.t;
  const T* dy = diff_dst;
  if (relu_) {  // the gradient reaching the normalisation: zero where the ReLU cut
    ctx.backend->relu_backward(rows * c, dst, diff_dst, diff_src);
    dy = diff_src;
  }
  moments_.assign(static_cast<std::size_t>(2 * c), 0.0);
  ctx.backend->channel_sums(rows, c, dy, src, moments_.data(), moments_.data() + c);
  ctx.backend->memory().synchronize();
  // This rank's share of gamma's and beta's gradients: sum dy * xhat and sum dy.
  T* diff_gamma = ctx.params->grad(gamma_);
  T* diff_beta = ctx.params->grad(beta_);
  for (Index k = 0; k < c; ++k) {
    const auto i = static_cast<std::size_t>(k);
    diff_beta[k] = static_cast<T>(moments_[i]);
    diff_gamma[k] = static_cast<T>((moments_[static_cast<std::size_t>(c + k)] - mean_[i] * moments_[i]) * inv_std_[i]);
  }
  if (ctx.allreduce_sum) (*ctx.allreduce_sum)(moments_.data(), 2 * c);
  std::vector<double> mean_dy(static_cast<std::size_t>(c)), mean_dy_xhat(static_cast<std::size_t>(c));
  for (Index k = 0; k < c; ++k) {
    const auto i = static_cast<std::size_t>(k);
    mean_dy[i] = moments_[i] / total_rows_;
    mean_dy_xhat[i] = (moments_[static_cast<std::size_t>(c + k)] - mean_[i] * moments_[i]) * inv_std_[i] / total_rows_;
  }
  ctx.backend->batch_norm_backward_data(rows, c, src, dy, mean_.data(), inv_std_.data(), ctx.params->value(gamma_),
                                        mean_dy.data(), mean_dy_xhat.data(), diff_src);
}

template class BatchNorm<float>;
template class BatchNorm<double>;

}  // namespace textscale::engine
