#include "textscale/engine/layers/embedding.h"

namespace textscale::engine {

template <typename T>
std::string Embedding<T>::describe() const {
  return "embedding " + std::to_string(vocab_) + "x" + std::to_string(dim_);
}

template <typename T>
Dims Embedding<T>::setup(ParamStore<T>& params, const std::string& prefix, Index length) {
  length_ = length;
  table_ = params.add(prefix + "table", {vocab_, dim_}, init_);
  return {0, length, dim_};
}

template <typename T>
void Embedding<T>::forward(Context<T>& ctx, Index n, const std::uint8_t* codes, T* dst) {
  ctx.backend->embedding_forward(n, length_, vocab_, dim_, codes, ctx.params->value(table_), dst);
}

template <typename T>
void Embedding<T>::backward(Context<T>& ctx, Index n, const std::uint8_t* codes, const T*, T* diff_dst) {
  ctx.backend->embedding_backward(n, length_, vocab_, dim_, codes, diff_dst, ctx.params->grad(table_));
}

template class Embedding<float>;
template class Embedding<double>;

}  // namespace textscale::engine
