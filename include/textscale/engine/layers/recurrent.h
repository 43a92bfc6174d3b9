// Layers over each row's real time steps (Context::steps and Context::lengths): a recurrent layer
// and the pooling of its states into one vector a row.
#pragma once
#include "textscale/engine/layer.h"

namespace textscale::engine {

// An LSTM, uni- or bidirectional (Backend::rnn_forward): src (N, T, C) -> dst (N, T, D*H), the
// directions' hidden states concatenated. Parameters `weights` (D, 4H, C + H): per direction W_x
// (4H, C) then W_h (4H, H), gates i, f, g, o (PyTorch's weight_ih and weight_hh); `bias` (D, 4H)
// (PyTorch's bias_ih + bias_hh). Both initialised U(-1/sqrt(H), 1/sqrt(H)), PyTorch's default.
// T is the batch's width (Context::steps), at most the set-up length.
template <typename T>
class Lstm final : public Layer<T> {
 public:
  Lstm(Index hidden, bool bidirectional) : hidden_(hidden), bidirectional_(bidirectional) {}
  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Dims src) override;
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;
  // Per sample at the set-up length: 4H (C + H) multiply-adds a step and direction.
  [[nodiscard]] double forward_macs() const override;

 private:
  RnnShape shape(const Context<T>& ctx, Index n) const;
  Index hidden_, c_in_ = 0, steps_ = 0;
  bool bidirectional_;
  ParamRef weights_, bias_;
  OpStatePtr state_;
};

// Pooling over each row's real steps (SequencePooling): src (N, T, C) -> dst (N, 1, C), with C in
// `directions` blocks for `last` (a bidirectional recurrent layer's output: its final states).
template <typename T>
class SequencePool final : public Layer<T> {
 public:
  SequencePool(SequencePooling mode, Index directions) : mode_(mode), directions_(directions) {}
  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Dims src) override;
  void reserve(Index max_batch, const Memory& memory) override;
  void forward(Context<T>& ctx, Index n, const T* src, T* dst) override;
  void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) override;

 private:
  SequencePooling mode_;
  Index directions_, channels_ = 0, steps_ = 0;
  Buffer<std::int32_t> argmax_;
};

// "last", "max", "mean"; parse throws InputError naming the choices.
[[nodiscard]] std::string to_string(SequencePooling mode);
[[nodiscard]] SequencePooling parse_sequence_pooling(const std::string& name);

extern template class Lstm<float>;
extern template class Lstm<double>;
extern template class SequencePool<float>;
extern template class SequencePool<double>;

}  // namespace textscale::engine
