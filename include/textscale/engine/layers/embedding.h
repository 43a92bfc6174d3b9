// Learned embedding of integer codes: codes (N, T) -> (N, T, E).
// Parameter `table` (V, E); every row is trained, code 0 included. Backward overwrites the table's
// gradient (rows no code in the batch selects get 0).
#pragma once

#include "textscale/engine/layer.h"

namespace textscale::engine {

template <typename T>
class Embedding final : public InputLayer<T> {
 public:
  Embedding(Index vocab, Index dim, Init init) : vocab_(vocab), dim_(dim), init_(init) {}

  [[nodiscard]] std::string describe() const override;
  Dims setup(ParamStore<T>& params, const std::string& prefix, Index length) override;
  void forward(Context<T>& ctx, Index n, const std::uint8_t* codes, T* dst) override;
  void backward(Context<T>& ctx, Index n, const std::uint8_t* codes, const T* dst, T* diff_dst) override;

 private:
  Index vocab_, dim_, length_ = 0;
  Init init_;
  ParamRef table_;
};

extern template class Embedding<float>;
extern template class Embedding<double>;

}  // namespace textscale::engine
