#include "textscale/engine/layers/residual.h"

#include <algorithm>

#include "textscale/common/error.h"

namespace textscale::engine {

template <typename T>
std::string Residual<T>::describe() const {
  return shortcut_ && !shortcut_->empty() ? "residual (projection shortcut)" : "residual (identity shortcut)";
}

template <typename T>
Dims Residual<T>::setup(ParamStore<T>& params, const std::string& prefix, Dims src) {
  src_ = src;
  dst_ = body_->setup(params, prefix + "body.", src);
  Dims via = src;
  if (shortcut_ && !shortcut_->empty()) via = shortcut_->setup(params, prefix + "shortcut.", src);
  if (via.t != dst_.t || via.c != dst_.c)
    throw Error("residual block " + prefix + ": shortcut shape " + via.str() + " differs from the body's " +
                dst_.str());
  return dst_;
}

template <typename T>
void Residual<T>::reserve(Index max_batch, const Memory& memory) {
  body_->reserve(max_batch, memory);
  body_out_.resize(static_cast<std::size_t>(max_batch * dst_.per_sample()), memory);
  if (shortcut_ && !shortcut_->empty()) {
    shortcut_->reserve(max_batch, memory);
    shortcut_out_.resize(static_cast<std::size_t>(max_batch * dst_.per_sample()), memory);
    diff_tmp_.resize(static_cast<std::size_t>(max_batch * src_.per_sample()), memory);
  }
}

template <typename T>
void Residual<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  body_->forward(ctx, n, src, body_out_.data());
  const T* other = src;
  if (shortcut_ && !shortcut_->empty()) {
    shortcut_->forward(ctx, n, src, shortcut_out_.data());
    other = shortcut_out_.data();
  }
  ctx.backend->add(n * dst_.per_sample(), body_out_.data(), other, dst);
}

template <typename T>
void Residual<T>::backward(Context<T>& ctx, Index n, const T* src, const T*, const T* diff_dst, T* diff_src) {
  body_->backward(ctx, n, src, body_out_.data(), diff_dst, diff_src);
  if (shortcut_ && !shortcut_->empty()) {
    shortcut_->backward(ctx, n, src, shortcut_out_.data(), diff_dst, diff_tmp_.data());
    if (diff_src) ctx.backend->add(n * src_.per_sample(), diff_src, diff_tmp_.data(), diff_src);
  } else if (diff_src) {
    ctx.backend->add(n * src_.per_sample(), diff_src, diff_dst, diff_src);
  }
}

template <typename T>
double Residual<T>::forward_macs() const {
  return body_->forward_macs() + (shortcut_ ? shortcut_->forward_macs() : 0);
}

template class Residual<float>;
template class Residual<double>;

}  // namespace textscale::engine
