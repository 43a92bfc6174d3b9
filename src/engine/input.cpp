#include "textscale/engine/input.h"

#include "textscale/common/error.h"

namespace textscale::engine {

std::string to_string(IdType type) {
  return type == IdType::characters ? "character codes" : "word ids";
}

InputBatch InputBatch::characters(const std::uint8_t* codes, Index n, Index length, const std::int32_t* lengths) {
  return {IdType::characters, codes, n, length, lengths, {}};
}

InputBatch InputBatch::words(const std::int32_t* ids, Index n, Index width, const std::int32_t* lengths) {
  return {IdType::words, ids, n, width, lengths, {}};
}

InputBatch InputBatch::sentence_words(const std::int32_t* ids, Index n, Index sentences, Index words,
                                      const std::int32_t* sentence_lengths, const std::int32_t* lengths) {
  return {IdType::words, ids, n, sentences * words, lengths, {sentences, words, sentence_lengths}};
}

const std::uint8_t* InputBatch::character_codes(const char* reader) const {
  if (type != IdType::characters)
    throw InputError(std::string(reader) + " reads character codes, but the batch holds " + to_string(type));
  return static_cast<const std::uint8_t*>(ids);
}

const std::int32_t* InputBatch::word_ids(const char* reader) const {
  if (type != IdType::words)
    throw InputError(std::string(reader) + " reads word ids, but the batch holds " + to_string(type));
  return static_cast<const std::int32_t*>(ids);
}

void InputBatch::validate() const {
  const std::string what = "input batch of " + to_string(type);
  if (n < 0) throw InputError(what + ": " + std::to_string(n) + " rows");
  if (width <= 0) throw InputError(what + ": width " + std::to_string(width) + " (ids a row) must be positive");
  if (n > 0 && ids == nullptr) throw InputError(what + ": " + std::to_string(n) + " rows but no ids");
  if (sentences.count == 0 && sentences.width == 0 && sentences.lengths == nullptr) return;
  if (type != IdType::words) throw InputError(what + ": sentences hold word ids");
  if (sentences.count <= 0 || sentences.width <= 0 || sentences.count * sentences.width != width)
    throw InputError(what + ": " + std::to_string(sentences.count) + " sentences of " +
                     std::to_string(sentences.width) + " words do not make rows of " + std::to_string(width));
}

InputBatch InputBatch::with_arrays(const void* new_ids, const std::int32_t* new_lengths,
                                   const std::int32_t* new_sentence_lengths) const {
  InputBatch moved = *this;
  moved.ids = new_ids;
  moved.lengths = new_lengths;
  moved.sentences.lengths = new_sentence_lengths;
  return moved;
}

}  // namespace textscale::engine
