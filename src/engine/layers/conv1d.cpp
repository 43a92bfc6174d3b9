#include "textscale/engine/layers/conv1d.h"

#include "textscale/common/error.h"

namespace textscale::engine {

template <typename T>
std::string Conv1d<T>::describe() const {
  return "conv1d " + std::to_string(src_.c) + "->" + std::to_string(options_.out) + " k" +
         std::to_string(options_.kernel) + (options_.stride != 1 ? " s" + std::to_string(options_.stride) : "") +
         (options_.pad != 0 ? " p" + std::to_string(options_.pad) : "") + (options_.relu ? " +relu" : "");
}

template <typename T>
Conv1dShape Conv1d<T>::shape(Index n) const {
  return {n, src_.t, src_.c, options_.out, options_.kernel, options_.stride, options_.pad};
}

template <typename T>
Dims Conv1d<T>::setup(ParamStore<T>& params, const std::string& prefix, Dims src) {
  src_ = src;
  if (shape(1).t_out() < 1)
    throw Error("convolution " + prefix + ": input length " + std::to_string(src.t) + " is shorter than the kernel");
  weights_ = params.add(prefix + "weights", {options_.out, src.c, options_.kernel}, options_.init);
  if (options_.bias) bias_ = params.add(prefix + "bias", {options_.out}, options_.bias_init);
  return {0, shape(1).t_out(), options_.out};
}

template <typename T>
void Conv1d<T>::reserve(Index max_batch, const Memory& memory) {
  if (options_.relu) masked_.resize(static_cast<std::size_t>(shape(max_batch).dst().count()), memory);
}

template <typename T>
void Conv1d<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  ctx.backend->conv1d_forward(forward_state_, shape(n), src, ctx.params->value(weights_),
                              options_.bias ? ctx.params->value(bias_) : nullptr, dst, options_.relu);
}

template <typename T>
void Conv1d<T>::backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) {
  ctx.backend->conv1d_backward(weights_state_, data_state_, shape(n), src, options_.relu ? dst : nullptr, diff_dst,
                               masked_.data(), ctx.params->value(weights_), ctx.params->grad(weights_),
                               options_.bias ? ctx.params->grad(bias_) : nullptr, diff_src);
}

template <typename T>
double Conv1d<T>::forward_macs() const {
  const Conv1dShape s = shape(1);
  return static_cast<double>(s.t_out() * s.c_out * s.c_in * s.kernel);
}

template <typename T>
std::string OneHotConv1d<T>::describe() const {
  return "one-hot conv1d " + std::to_string(alphabet_) + "->" + std::to_string(out_) + " k" + std::to_string(kernel_) +
         (relu_ ? " +relu" : "") +
         (pooled() ? " +max-pool k" + std::to_string(pool_.kernel) + " s" + std::to_string(pool_.stride) : "");
}

template <typename T>
Dims OneHotConv1d<T>::setup(ParamStore<T>& params, const std::string& prefix, Index length) {
  length_ = length;
  if (length < kernel_) throw Error("one-hot convolution: input length is shorter than the kernel");
  weights_ = params.add(prefix + "weights", {out_, alphabet_, kernel_}, init_);
  bias_ = params.add(prefix + "bias", {out_}, bias_init_);
  if (!pooled()) return {0, shape(1).t_out(), out_};
  if (!relu_) throw Error("one-hot convolution: pooling is fused only after the ReLU");
  if (pool_.kernel > 255 || pool_.stride < 1 || pooled_shape(1).dst().t < 1)
    throw Error("one-hot convolution: pooling window 1 to 255 no longer than the output, stride >= 1");
  return {0, pooled_shape(1).dst().t, out_};
}

template <typename T>
void OneHotConv1d<T>::forward(Context<T>& ctx, const InputBatch& in, T* dst) {
  const Index n = in.n;
  const std::uint8_t* codes = in.character_codes("the one-hot convolution");
  if (pooled()) {
    ctx.backend->onehot_conv1d_relu_pool_forward(forward_state_, pooled_shape(n), codes, ctx.params->value(weights_),
                                                 ctx.params->value(bias_), dst, ctx.training);
    return;
  }
  ctx.backend->onehot_conv1d_forward(forward_state_, shape(n), codes, ctx.params->value(weights_),
                                     ctx.params->value(bias_), dst, relu_);
}

template <typename T>
void OneHotConv1d<T>::backward(Context<T>& ctx, const InputBatch& in, const T* dst, T* diff_dst) {
  const Index n = in.n;
  const std::uint8_t* codes = in.character_codes("the one-hot convolution");
  if (pooled()) {
    ctx.backend->onehot_conv1d_relu_pool_backward_weights(forward_state_, pooled_shape(n), codes, dst, diff_dst,
                                                          ctx.params->grad(weights_), ctx.params->grad(bias_));
    return;
  }
  const Conv1dShape s = shape(n);
  // In place (InputLayer's contract): for Crepe this saves a buffer of the largest activation.
  if (relu_) ctx.backend->relu_backward(s.dst().count(), dst, diff_dst, diff_dst);
  ctx.backend->onehot_conv1d_backward_weights(weights_state_, s, codes, diff_dst, ctx.params->grad(weights_),
                                              ctx.params->grad(bias_));
}

template <typename T>
double OneHotConv1d<T>::forward_macs() const {
  const Conv1dShape s = shape(1);
  return static_cast<double>(s.t_out() * s.c_out * s.c_in * s.kernel);
}

template class Conv1d<float>;
template class Conv1d<double>;
template class OneHotConv1d<float>;
template class OneHotConv1d<double>;

}  // namespace textscale::engine
