#include "textscale/engine/layers/embedding.h"

#include "textscale/common/error.h"

namespace textscale::engine {

template <typename T>
std::string Embedding<T>::describe() const {
  return std::string(ids_ == IdType::words ? "word " : "") + "embedding " + std::to_string(vocab_) + "x" +
         std::to_string(dim_) + (frozen_ ? " (frozen)" : "");
}

template <typename T>
Dims Embedding<T>::setup(ParamStore<T>& params, const std::string& prefix, Index length) {
  if (vocab_ < 1 || dim_ < 1) throw InputError("embedding: the table needs at least one row and one column");
  if (ids_ == IdType::characters && vocab_ > 256)
    throw InputError("character embedding: " + std::to_string(vocab_) + " rows, but codes are bytes");
  length_ = length;
  table_ = frozen_ ? params.add_state(prefix + "table", {vocab_, dim_}, init_)
                   : params.add(prefix + "table", {vocab_, dim_}, init_,
                                ids_ == IdType::words ? Gradient::row_sparse : Gradient::dense);
  return {0, length, dim_};
}

template <typename T>
void Embedding<T>::forward(Context<T>& ctx, const InputBatch& in, T* dst) {
  const T* table = ctx.params->value(table_);
  if (ids_ == IdType::characters)
    ctx.backend->embedding_forward(in.n, in.width, vocab_, dim_, in.character_codes("the character embedding"), table,
                                   dst);
  else
    ctx.backend->embedding_forward(in.n, in.width, vocab_, dim_, in.word_ids("the word embedding"), table, dst);
}

template <typename T>
void Embedding<T>::backward(Context<T>& ctx, const InputBatch& in, const T*, T* diff_dst) {
  if (frozen_) return;
  T* diff_table = ctx.params->grad(table_);
  if (ids_ == IdType::characters)
    ctx.backend->embedding_backward(in.n, in.width, vocab_, dim_, in.character_codes("the character embedding"),
                                    diff_dst, diff_table);
  else if (RowSparse* sparse = ctx.params->row_sparse(table_))
    ctx.backend->embedding_backward_rows(in.n, in.width, vocab_, dim_, in.word_ids("the word embedding"), diff_dst,
                                         diff_table, sparse->rows);
  else
    ctx.backend->embedding_backward(in.n, in.width, vocab_, dim_, in.word_ids("the word embedding"), diff_dst,
                                    diff_table);
}

template class Embedding<float>;
template class Embedding<double>;

}  // namespace textscale::engine
