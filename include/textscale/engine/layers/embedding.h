// Learned embedding of ids: ids (N, T) -> (N, T, E), channels last like every activation (dims.h),
// so the convolutions and sequence layers after it read it directly.
// Reads the ids of one type (input.h), given at construction: character codes (VDCNN's character
// embedding, V <= 256) or word ids (a word model's input, V up to millions); a batch of the other
// type is an InputError. Padding positions are embedded like any id (row 0 for the padding id);
// the batch's lengths are not read.
// Parameter `table` (V, E); every row is trained, id 0 included, unless `frozen`: the table is
// then state (saved and restored, never updated: pretrained vectors kept as they are) and
// backward computes nothing. Backward gives the table's gradient as the per-id sums of diff_dst,
// 0 in rows no id in the batch selects. A character table's gradient is dense (V <= 256); a word
// table's is row-sparse in host memory (params.h: RowSparse): backward writes only the rows of
// the batch's words, and clears those of the batch before.
#pragma once

#include "textscale/engine/layer.h"

namespace textscale::engine {

template <typename T>
class Embedding final : public InputLayer<T> {
 public:
  Embedding(Index vocab, Index dim, Init init, IdType ids = IdType::characters, bool any_width = false,
            bool frozen = false)
      : vocab_(vocab), dim_(dim), init_(init), ids_(ids), any_width_(any_width), frozen_(frozen) {}

  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] IdType ids() const override { return ids_; }
  [[nodiscard]] bool any_width() const override { return any_width_; }
  Dims setup(ParamStore<T>& params, const std::string& prefix, Index length) override;
  void forward(Context<T>& ctx, const InputBatch& in, T* dst) override;
  void backward(Context<T>& ctx, const InputBatch& in, const T* dst, T* diff_dst) override;

 private:
  Index vocab_, dim_, length_ = 0;
  Init init_;
  IdType ids_;
  bool any_width_, frozen_;
  ParamRef table_;
};

extern template class Embedding<float>;
extern template class Embedding<double>;

}  // namespace textscale::engine
