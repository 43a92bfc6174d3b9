#include "textscale/engine/layers/sequential.h"

#include <algorithm>

#include "textscale/common/error.h"

namespace textscale::engine {

template <typename T>
std::string Sequential<T>::describe() const {
  return "sequential of " + std::to_string(layers_.size());
}

template <typename T>
Dims Sequential<T>::setup(ParamStore<T>& params, const std::string& prefix, Dims src) {
  prefix_ = prefix;
  shapes_.clear();
  first_gradient_.clear();
  Dims shape = src;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    first_gradient_.push_back(params.trained_count());  // the next trained offset
    shape = layers_[i]->setup(params, prefix + std::to_string(first_number_ + i) + ".", shape);
    shapes_.push_back(shape);
  }
  return shape;
}

template <typename T>
Buffer<T>& Sequential<T>::diff_src_buffer(std::size_t j) {
  return (layers_.size() - 1 - j) % 2 == 0 ? diff_a_ : diff_b_;
}

template <typename T>
void Sequential<T>::reserve(Index max_batch, const Memory& memory) {
  activations_.resize(layers_.size() > 0 ? layers_.size() - 1 : 0);
  Index largest[2] = {0, 0};  // per sample, of the gradients diff_a_ and diff_b_ hold
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->reserve(max_batch, memory);
    if (i >= 1) {
      Index& held = largest[(layers_.size() - 1 - i) % 2];
      held = std::max(held, shapes_[i - 1].per_sample());
    }
    if (i + 1 < layers_.size())
      activations_[i].resize(static_cast<std::size_t>(max_batch * shapes_[i].per_sample()), memory);
  }
  diff_a_.resize(static_cast<std::size_t>(max_batch * largest[0]), memory);
  diff_b_.resize(static_cast<std::size_t>(max_batch * largest[1]), memory);
}

template <typename T>
void Sequential<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  const T* in = src;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    T* out = i + 1 < layers_.size() ? activations_[i].data() : dst;
    const std::size_t begin = ctx.profile ? ctx.backend->memory().mark() : 0;
    layers_[i]->forward(ctx, n, in, out);
    if (ctx.profile) {
      const std::size_t slot = ctx.profile->slot(prefix_ + std::to_string(first_number_ + i));
      ctx.profile->entries[slot].layer = layers_[i]->describe();
      ctx.profile->entries[slot].calls += 1;
      ctx.profile->add(slot, true, begin, ctx.backend->memory().mark());
    }
    in = out;
  }
}

template <typename T>
void Sequential<T>::backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) {
  const T* grad = diff_dst;
  for (std::size_t j = layers_.size(); j-- > 0;) {
    const T* in = j == 0 ? src : activations_[j - 1].data();
    const T* out = j + 1 == layers_.size() ? dst : activations_[j].data();
    T* grad_in = j == 0 ? diff_src : diff_src_buffer(j).data();
    const std::size_t begin = ctx.profile ? ctx.backend->memory().mark() : 0;
    layers_[j]->backward(ctx, n, in, out, grad, grad_in);
    if (ctx.profile)
      ctx.profile->add(ctx.profile->slot(prefix_ + std::to_string(first_number_ + j)), false, begin,
                       ctx.backend->memory().mark());
    if (report_gradients_ && ctx.on_gradients_ready) (*ctx.on_gradients_ready)(first_gradient_[j]);
    grad = grad_in;
  }
}

template <typename T>
double Sequential<T>::forward_macs() const {
  double total = 0;
  for (const auto& layer : layers_) total += layer->forward_macs();
  return total;
}

template class Sequential<float>;
template class Sequential<double>;

}  // namespace textscale::engine
