// A model's input batch: which ids it holds, where they are, and how they are laid out.
//
// Ids are of one of two kinds (IdType):
//  - characters: std::uint8_t codes (N, T), T characters a row; the character models read these
//    (the one-hot convolution and the character embedding read bytes);
//  - words: std::int32_t ids (N, W) into a vocabulary of V words (V up to millions).
// Each row is padded to the same width; `lengths` (int32, N), when given, counts a row's real ids
// before the padding. Layers that do not need it (convolutions over the padded row) ignore it.
//
// A batch of documents split into sentences (HAN: words within sentences, sentences within the
// document) is ids (N, S, W): S sentences of W words a row, row-major, so `width` = S * W, with
// `sentences.lengths` (int32, N * S) the real words of each sentence and `lengths` (N) the real
// sentences of each document. No layer reads the sentence structure yet; validate() checks it.
//
// Every pointer points into the memory of the backend the batch is given to (Backend::memory()),
// so validate() checks shapes and pointers, not the values: a backend's embedding checks the ids.
// The batch does not own its arrays.
#pragma once

#include <cstdint>
#include <string>

#include "textscale/engine/dims.h"

namespace textscale::engine {

enum class IdType {
  characters,  // std::uint8_t codes
  words,       // std::int32_t ids
};

[[nodiscard]] std::string to_string(IdType type);  // "character codes", "word ids"

// Sentences within each row: (N, S, W) ids. `count` 0: the rows are flat sequences.
struct SentenceLayout {
  Index count = 0;                        // S sentences a row
  Index width = 0;                        // W words a sentence
  const std::int32_t* lengths = nullptr;  // (N, S) real words of each sentence; may be null
};

struct InputBatch {
  IdType type = IdType::characters;
  const void* ids = nullptr;              // (N, width), of `type`'s element type
  Index n = 0;                            // rows
  Index width = 0;                        // ids a row: T characters, W words, or S * W
  const std::int32_t* lengths = nullptr;  // (N) real ids (sentences, with sentences) a row; may be null
  SentenceLayout sentences{};

  // Character codes (N, length).
  [[nodiscard]] static InputBatch characters(const std::uint8_t* codes, Index n, Index length,
                                             const std::int32_t* lengths = nullptr);
  // Word ids (N, width).
  [[nodiscard]] static InputBatch words(const std::int32_t* ids, Index n, Index width,
                                        const std::int32_t* lengths = nullptr);
  // Word ids (N, S, W) in sentences, with the words of each sentence (N, S) and the sentences of
  // each row (N); either may be null.
  [[nodiscard]] static InputBatch sentence_words(const std::int32_t* ids, Index n, Index sentences, Index words,
                                                 const std::int32_t* sentence_lengths,
                                                 const std::int32_t* lengths = nullptr);

  // The ids as `type`'s element type; throws InputError naming both kinds when the batch holds the
  // other (a character model given word ids, say). `reader` names who asks, for the message.
  [[nodiscard]] const std::uint8_t* character_codes(const char* reader) const;
  [[nodiscard]] const std::int32_t* word_ids(const char* reader) const;

  // Bytes of one id, and of the ids of all rows.
  [[nodiscard]] std::size_t id_bytes() const { return type == IdType::characters ? 1 : sizeof(std::int32_t); }
  [[nodiscard]] std::size_t bytes() const { return static_cast<std::size_t>(n * width) * id_bytes(); }

  // Throws InputError unless the shape is consistent: n >= 0, width > 0, ids present when n > 0,
  // and with sentences: word ids, S > 0, W > 0, S * W == width.
  void validate() const;
  // The same view with other pointers (the batch staged into another memory).
  [[nodiscard]] InputBatch with_arrays(const void* new_ids, const std::int32_t* new_lengths,
                                       const std::int32_t* new_sentence_lengths) const;
};

}  // namespace textscale::engine
