// A trained checkpoint put to use: raw text in, class probabilities out (predict, serve, and
// evaluate's per-row predictions).
//
// TextEncoder turns records into model rows exactly as `textscale preprocess` made the training
// file: the same record layout, unescaping, character quantisation, tokenizer, vocabulary and
// lengths, read from the checkpoint (format version 5) or, for an older checkpoint, from the
// training file named by --vocab-from. Classifier runs the model on those rows.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "textscale/engine/backend_options.h"
#include "textscale/engine/input.h"
#include "textscale/preprocess/options.h"
#include "textscale/preprocess/row_encoder.h"
#include "textscale/train/checkpoint.h"

namespace textscale::predict {

// The checkpoint's attributes, with its text source completed: a checkpoint that carries none
// (format version 4 or older) takes it from `vocab_from`, the preprocessed file it was trained
// on, after checking that file's encoding against the checkpoint's. Throws InputError naming the
// checkpoint when neither has it, or naming both files when they do not match.
[[nodiscard]] train::CheckpointInfo read_classifier_info(const std::string& checkpoint, const std::string& vocab_from);

// The preprocess options the training file was read with (its record layout, labels, class names,
// unescaping and lengths), ready to read new text: no validation split, no output.
[[nodiscard]] preprocess::PreprocessOptions text_options(const train::CheckpointInfo& info);

// Records -> model rows. Not shared between threads (its RowEncoder holds scratch buffers).
class TextEncoder {
 public:
  // `options` usually text_options(info), adjusted to the input's layout (label column, format).
  TextEncoder(const train::CheckpointInfo& info, preprocess::PreprocessOptions options);
  TextEncoder(const TextEncoder&) = delete;
  TextEncoder& operator=(const TextEncoder&) = delete;

  [[nodiscard]] const preprocess::PreprocessOptions& options() const { return options_; }
  // Encodes the good records of `block` into result.train (labels -1 where a record has none) and
  // lists the others in result.bad, both in record order.
  void encode(const preprocess::Block& block, preprocess::BlockResult& result);

 private:
  preprocess::PreprocessOptions options_;
  preprocess::CharQuantizer quantizer_;
  std::optional<preprocess::Vocabulary> vocabulary_;
  std::unique_ptr<preprocess::RowEncoder> encoder_;
};

struct ClassifierOptions {
  engine::BackendOptions backend;
  std::int64_t max_batch = 128;        // rows one forward pass takes at most
  int local_rank = 0, local_size = 1;  // this process among the ranks on its node (picks its GPU)
};

// The model of a checkpoint on a backend, for inference. Not shared between threads.
class Classifier {
 public:
  Classifier(const std::string& checkpoint, const train::CheckpointInfo& info, const ClassifierOptions& options);
  ~Classifier();
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;

  [[nodiscard]] const train::CheckpointInfo& info() const;
  // The class names: the training file's, or "0", "1", ... when it had none.
  [[nodiscard]] const std::vector<std::string>& class_names() const;
  [[nodiscard]] std::int64_t classes() const;
  [[nodiscard]] std::int64_t max_batch() const;
  [[nodiscard]] std::string backend_name() const;

  // probabilities[n, classes] = softmax of the logits of `batch` (n <= max_batch rows), and
  // predicted[n] the class of each row's highest logit (the lowest among equals), as evaluate counts.
  void classify(const engine::InputBatch& batch, float* probabilities, std::int32_t* predicted);
  // Rows [begin, begin + n) of `rows` (n <= max_batch), as evaluate batches a preprocessed file's
  // rows: characters as they are, word rows cut to the longest among them.
  void classify(const preprocess::EncodedRows& rows, std::size_t begin, std::size_t n, float* probabilities,
                std::int32_t* predicted);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// probabilities[c] = exp(logits[c] - max) / sum over c', in float, the same on every backend.
void softmax(const float* logits, std::int64_t classes, float* probabilities);

}  // namespace textscale::predict
