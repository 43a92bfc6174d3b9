#include "textscale/engine/layers/recurrent.h"

#include "textscale/common/error.h"

namespace textscale::engine {

template <typename T>
std::string Lstm<T>::describe() const {
  return std::string(bidirectional_ ? "bidirectional " : "") + "lstm " + std::to_string(c_in_) + "->" +
         std::to_string(hidden_);
}

template <typename T>
Dims Lstm<T>::setup(ParamStore<T>& params, const std::string& prefix, Dims src) {
  if (hidden_ < 1) throw InputError("lstm: the hidden size must be positive");
  c_in_ = src.c;
  steps_ = src.t;
  const RnnShape s{RnnCell::lstm, 0, steps_, c_in_, hidden_, bidirectional_};
  const Init init = Init::fan_in_uniform(hidden_);
  weights_ = params.add(prefix + "weights", {s.directions(), s.gates() * hidden_, c_in_ + hidden_}, init);
  bias_ = params.add(prefix + "bias", {s.directions(), s.gates() * hidden_}, init);
  return {0, steps_, s.directions() * hidden_};
}

template <typename T>
RnnShape Lstm<T>::shape(const Context<T>& ctx, Index n) const {
  const Index steps = ctx.steps > 0 ? ctx.steps : steps_;
  if (steps > steps_)
    throw Error("lstm: a batch of " + std::to_string(steps) + " steps, more than the " + std::to_string(steps_) +
                " it was set up for");
  return {RnnCell::lstm, n, steps, c_in_, hidden_, bidirectional_};
}

template <typename T>
void Lstm<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  ctx.backend->rnn_forward(state_, shape(ctx, n), src, ctx.lengths, ctx.params->value(weights_),
                           ctx.params->value(bias_), dst, ctx.training);
}

template <typename T>
void Lstm<T>::backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) {
  ctx.backend->rnn_backward(state_, shape(ctx, n), src, ctx.lengths, ctx.params->value(weights_), dst, diff_dst,
                            diff_src, ctx.params->grad(weights_), ctx.params->grad(bias_));
}

template <typename T>
double Lstm<T>::forward_macs() const {
  const double directions = bidirectional_ ? 2 : 1;
  return directions * static_cast<double>(steps_) * 4.0 * static_cast<double>(hidden_ * (c_in_ + hidden_));
}

std::string to_string(SequencePooling mode) {
  switch (mode) {
    case SequencePooling::last:
      return "last";
    case SequencePooling::max:
      return "max";
    case SequencePooling::mean:
      return "mean";
  }
  return "?";
}

SequencePooling parse_sequence_pooling(const std::string& name) {
  for (const auto mode : {SequencePooling::last, SequencePooling::max, SequencePooling::mean})
    if (to_string(mode) == name) return mode;
  throw InputError("unknown pooling '" + name + "': choose last, max or mean");
}

template <typename T>
std::string SequencePool<T>::describe() const {
  return to_string(mode_) + " pooling over time" + (mode_ == SequencePooling::max ? "" : " (real steps)");
}

template <typename T>
Dims SequencePool<T>::setup(ParamStore<T>&, const std::string&, Dims src) {
  if (directions_ < 1 || src.c % directions_ != 0)
    throw InputError("sequence pooling: " + std::to_string(src.c) + " channels do not split into " +
                     std::to_string(directions_) + " directions");
  channels_ = src.c;
  steps_ = src.t;
  return {0, 1, channels_};
}

template <typename T>
void SequencePool<T>::reserve(Index max_batch, const Memory& memory) {
  if (mode_ == SequencePooling::max) argmax_.resize(static_cast<std::size_t>(max_batch * channels_), memory);
}

template <typename T>
void SequencePool<T>::forward(Context<T>& ctx, Index n, const T* src, T* dst) {
  ctx.backend->sequence_pool_forward(mode_, {n, ctx.steps > 0 ? ctx.steps : steps_, channels_}, directions_, src,
                                     ctx.lengths, dst, argmax_.data());
}

template <typename T>
void SequencePool<T>::backward(Context<T>& ctx, Index n, const T*, const T*, const T* diff_dst, T* diff_src) {
  if (diff_src)
    ctx.backend->sequence_pool_backward(mode_, {n, ctx.steps > 0 ? ctx.steps : steps_, channels_}, directions_,
                                        ctx.lengths, argmax_.data(), diff_dst, diff_src);
}

template class Lstm<float>;
template class Lstm<double>;
template class SequencePool<float>;
template class SequencePool<double>;

}  // namespace textscale::engine
