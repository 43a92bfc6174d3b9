#include "textscale/engine/layers/pooling.h"

#include "textscale/common/error.h"

namespace textscale::engine {

template <typename T>
std::string MaxPool1d<T>::describe() const {
  return "max-pool k" + std::to_string(kernel_) + " s" + std::to_string(stride_) +
         (pad_ != 0 ? " p" + std::to_string(pad_) : "");
}

template <typename T>
Dims MaxPool1d<T>::setup(ParamStore<T>&, const std::string& prefix, Dims src) {
  src_ = src;
  if (shape(1).t_out() < 1) throw Error("max pooling " + prefix + ": input shorter than the window");
  return {0, shape(1).t_out(), src.c};
}

template <typename T>
void MaxPool1d<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  ctx.backend->max_pool_forward(state_, shape(n), src, dst, ctx.training);
}

template <typename T>
void MaxPool1d<T>::backward(Context<T>& ctx, Index n, const T*, const T*, const T* diff_dst, T* diff_src) {
  if (diff_src) ctx.backend->max_pool_backward(state_, shape(n), diff_dst, diff_src);
}

template <typename T>
std::string KMaxPool<T>::describe() const {
  return "k-max pool k" + std::to_string(k_);
}

template <typename T>
Dims KMaxPool<T>::setup(ParamStore<T>&, const std::string& prefix, Dims src) {
  src_ = src;
  if (src.t < k_)
    throw Error("k-max pooling " + prefix + ": k = " + std::to_string(k_) + " exceeds the input length " +
                std::to_string(src.t));
  return {0, k_, src.c};
}

template <typename T>
void KMaxPool<T>::reserve(Index max_batch, const Memory& memory) {
  indices_.resize(static_cast<std::size_t>(max_batch * k_ * src_.c), memory);
}

template <typename T>
void KMaxPool<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  ctx.backend->kmax_pool_forward({n, src_.t, src_.c}, k_, src, dst, indices_.data());
}

template <typename T>
void KMaxPool<T>::backward(Context<T>& ctx, Index n, const T*, const T*, const T* diff_dst, T* diff_src) {
  if (diff_src) ctx.backend->kmax_pool_backward({n, src_.t, src_.c}, k_, diff_dst, indices_.data(), diff_src);
}

template class MaxPool1d<float>;
template class MaxPool1d<double>;
template class KMaxPool<float>;
template class KMaxPool<double>;

}  // namespace textscale::engine
