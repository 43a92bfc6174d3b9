#include "textscale/engine/layers/activation.h"

#include "textscale/engine/dropout_mask.h"

namespace textscale::engine {

template <typename T>
void Relu<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  ctx.backend->relu_forward(count(n), src, dst);
}

template <typename T>
void Relu<T>::backward(Context<T>& ctx, Index n, const T*, const T* dst, const T* diff_dst, T* diff_src) {
  if (diff_src) ctx.backend->relu_backward(count(n), dst, diff_dst, diff_src);
}

template <typename T>
std::string Dropout<T>::describe() const {
  return "dropout " + std::to_string(p_).substr(0, 4);
}

template <typename T>
Dims Dropout<T>::setup(ParamStore<T>&, const std::string&, Dims src) {
  size_ = src.per_sample();
  return src;
}

template <typename T>
void Dropout<T>::reserve(Index max_batch, const Memory& memory) {
  mask_.resize(static_cast<std::size_t>(max_batch * size_), memory);
}

template <typename T>
void Dropout<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  masked_ = ctx.training && p_ > 0;
  if (masked_) {
    auto seed = dropout_seed(ctx.seed, static_cast<std::uint64_t>(id_), static_cast<std::uint64_t>(ctx.step));
    ctx.backend->dropout_forward(n * size_, p_, seed, static_cast<std::uint64_t>(ctx.sample_offset * size_), src, dst,
                                 mask_.data());
  } else {
    ctx.backend->copy(n * size_, src, dst);
  }
}

template <typename T>
void Dropout<T>::backward(Context<T>& ctx, Index n, const T*, const T*, const T* diff_dst, T* diff_src) {
  if (!diff_src) return;
  if (masked_)
    ctx.backend->multiply(n * size_, diff_dst, mask_.data(), diff_src);
  else
    ctx.backend->copy(n * size_, diff_dst, diff_src);
}

template class Relu<float>;
template class Relu<double>;
template class Dropout<float>;
template class Dropout<double>;

}  // namespace textscale::engine
