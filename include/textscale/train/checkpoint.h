// Checkpoints: everything needed to resume training bitwise or to classify text later, in one
// HDF5 file.
//
// Layout (all at the root unless named):
//   attributes  format = "textscale-checkpoint", format_version = kCheckpointFormatVersion,
//               checkpoint_version = 3, model (JSON of the ModelConfig: name, classes, length,
//               alphabet, and the family's hyperparameters, every member), training (JSON of the
//               resolved training configuration), backend_options (JSON of the resolved
//               engine::BackendOptions), position (JSON of TrainingPosition), alphabet,
//               char_length, char_order, num_classes, classes, created_by, libraries, created,
//               for word models input_ids = "words", word_length, vocab_size, vocab_digest,
//               and, when the data files have content digests, train_content_sha256 and
//               valid_content_sha256 (docs/hdf5-schema.md, "Content digest"); text_options
//               (the training file's preprocess options, JSON) and, for word models, tokenizer;
//               tensor_sha256 (JSON: "parameters/<name>", "state/<name>", "optimizer/slot<s>" -> the
//               SHA-256, hex, of that tensor's stored bytes), verified on every load
//   vocab       word models: the training file's vocabulary (vocab[id], variable-length strings)
//   parameters/<name>   every trained tensor in its canonical layout (float32 or float64)
//   state/<name>        non-trained tensors (batch-norm running statistics)
//   optimizer/slot0, optimizer/slot1   flat optimizer state parallel to the parameters, with
//               attributes kind and steps (absent in a model-only checkpoint)
// Written to a temporary name in the same folder, flushed, fsync'ed and renamed over the target,
// so a crash never leaves a half-written checkpoint under the final name.
//
// Format versions and compatibility (docs/training.md):
//   1  no format_version and no content digests; checkpoint_version = 1
//   2  adds format_version and the data's content digests; checkpoint_version = 1
//   3  the model attribute holds the hyperparameters as an object, "hyperparameters" (before: the
//      overrides of every model at its top level, features and fc 0 for the published values);
//      checkpoint_version = 3
//   4  the model attribute adds vocab; word models add input_ids, word_length, vocab_size and
//      vocab_digest; checkpoint_version = 3
//   5  adds how raw text is encoded: text_options, and for word models tokenizer and the vocab
//      dataset (predict and serve read them); checkpoint_version = 3
//   6  adds tensor_sha256, the SHA-256 of every tensor (parameters, state, optimizer slots),
//      verified on every load; checkpoint_version = 3. Older versions load with a warning that
//      their weights are unverified. (One attribute at the root rather than one per tensor:
//      `h5diff -d` of two checkpoints' groups compares their values, not digests that differ.)
// A build reads every format version up to its own kCheckpointFormatVersion and refuses a newer
// one, naming both versions. A checkpoint without format_version is version 1 (checkpoint_version,
// when present, stands for it). A version that only adds attributes keeps checkpoint_version = 1,
// so that builds which know only checkpoint_version still read it; a version those builds could
// not read sets checkpoint_version to the new version, so that they refuse it.
#pragma once

#include <cstdint>
#include <string>

#include "textscale/engine/backend_options.h"
#include "textscale/engine/model.h"
#include "textscale/train/dataset.h"
#include "textscale/train/optimizer.h"

namespace textscale::train {

// The checkpoint format version this build writes, and the newest it reads.
inline constexpr std::int64_t kCheckpointFormatVersion = 6;

// Where training stands: the epoch in progress (0-based), the next batch within it, the global
// step, the running sums of the epoch so far, and model selection's best so far.
struct TrainingPosition {
  std::int64_t epoch = 0, batch = 0, step = 0;
  double epoch_loss_sum = 0;
  std::int64_t epoch_correct = 0, epoch_samples = 0;
  double epoch_seconds = 0;
  double best_valid_accuracy = -1;
  std::int64_t best_epoch = -1;
};

struct CheckpointInfo {
  engine::ModelConfig model;
  Encoding encoding;
  TrainingPosition position;
  std::string training_json = "{}";
  // The backend options the state was computed with. A checkpoint written before they were
  // recorded reads as the defaults, with the device, backend and precision of its training
  // options (device auto: unknown) and threads 0 (unknown).
  engine::BackendOptions backend_options;
  std::string optimizer_kind;  // empty when the checkpoint has no optimizer state
  // The content digests of the training and validation files (docs/hdf5-schema.md); empty when
  // unknown: no validation file, a file made before content digests, or a version 1 checkpoint.
  std::string train_content_sha256, valid_content_sha256;
  // How raw text becomes the model's input; empty in a checkpoint of format version 4 or older.
  TextSource text;
  std::int64_t format_version = kCheckpointFormatVersion;  // read: the file's
};

// The model attribute: the stored part of `config` (engine::ModelConfig's JSON).
std::string model_config_json(const engine::ModelConfig& config);
// Reads the model attribute of any format version, and completes the hyperparameters with the
// published values of the model's name.
engine::ModelConfig model_config_from_json(const std::string& json);

template <typename T>
void save_checkpoint(const std::string& path, engine::Model<T>& model, Optimizer<T>* optimizer,
                     const CheckpointInfo& info);

// Reads the attributes only; throws InputError for a file that is not a complete checkpoint, or of a
// newer format version than this build reads.
CheckpointInfo read_checkpoint_info(const std::string& path);

// Loads parameters and state into `model` (and the optimizer state when `optimizer` is given).
// Refuses, naming the file, a checkpoint of another model or of other sizes, and a tensor whose
// data does not match its digest in tensor_sha256 (naming the tensor).
template <typename T>
void load_checkpoint(const std::string& path, engine::Model<T>& model, Optimizer<T>* optimizer);

}  // namespace textscale::train
