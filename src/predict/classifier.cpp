#include "textscale/predict/classifier.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "textscale/common/error.h"
#include "textscale/engine/model.h"
#include "textscale/preprocess/labels.h"
#include "textscale/preprocess/text.h"
#include "textscale/train/backend_factory.h"
#include "textscale/train/dataset.h"
#include "textscale/train/training_step.h"

namespace textscale::predict {

train::CheckpointInfo read_classifier_info(const std::string& checkpoint, const std::string& vocab_from) {
  train::CheckpointInfo info = train::read_checkpoint_info(checkpoint);
  if (!info.text.empty() && vocab_from.empty()) return info;
  if (vocab_from.empty())
    throw InputError(checkpoint + ": the checkpoint (format version " + std::to_string(info.format_version) +
                     ") does not carry how text was encoded for it; give --vocab-from TRAIN.h5, the "
                     "preprocessed file it was trained on");
  // --vocab-from with either kind of checkpoint: the file must be one the model could have been
  // trained on.
  info.encoding.check_compatible(train::read_encoding(vocab_from, info.encoding.ids), checkpoint, vocab_from);
  if (info.text.empty()) {
    info.text = train::read_text_source(vocab_from, info.encoding.ids);
    if (info.text.empty())
      throw InputError(vocab_from + ": the file does not record how it was preprocessed (attribute 'options')");
  }
  return info;
}

namespace {

template <typename T>
T field(const nlohmann::json& options, const char* name, const std::string& where) {
  if (!options.contains(name)) throw InputError(where + ": the preprocess options lack '" + name + "'");
  return options.at(name).get<T>();
}

preprocess::Unescape unescape_named(const std::string& name, const std::string& where) {
  for (const auto mode : {preprocess::Unescape::none, preprocess::Unescape::newline, preprocess::Unescape::backslash})
    if (name == to_string(mode)) return mode;
  throw InputError(where + ": unknown unescape mode '" + name + "'");
}

}  // namespace

preprocess::PreprocessOptions text_options(const train::CheckpointInfo& info) {
  using preprocess::InputFormat;
  using preprocess::LabelKind;
  const std::string where = "the checkpoint's text_options";
  preprocess::PreprocessOptions o;
  try {
    const nlohmann::json options = nlohmann::json::parse(info.text.options_json);
    const auto format = field<std::string>(options, "format", where);
    if (format == "zhang") {
      o.format = InputFormat::zhang;
    } else if (format == "tsv") {
      o.format = InputFormat::tsv;
    } else if (format == "imdb") {
      o.format = InputFormat::imdb;
    } else {
      throw InputError(where + ": unknown format '" + format + "'");
    }
    const auto delimiter = field<std::string>(options, "delimiter", where);
    if (delimiter.size() != 1) throw InputError(where + ": delimiter '" + delimiter + "' is not one character");
    o.delimiter = delimiter[0];
    o.header = field<bool>(options, "header", where);
    o.quoting = field<bool>(options, "quoting", where);
    o.label_column = field<int>(options, "label_column", where);
    o.text_columns = field<std::vector<int>>(options, "text_columns", where);
    const auto labels = field<std::string>(options, "labels", where);
    o.labels = labels == "index0" ? LabelKind::index0 : labels == "index1" ? LabelKind::index1 : LabelKind::names;
    o.unescape = unescape_named(field<std::string>(options, "unescape", where), where);
    o.max_row_bytes = field<std::size_t>(options, "max_row_bytes", where);
  } catch (const nlohmann::json::exception& error) {
    throw InputError(where + " are damaged: " + error.what());
  }
  // The layouts that fix their labels (zhang's 1-based integers, imdb's folders) read the class
  // names from the checkpoint; a tsv file with class names maps them.
  if (o.format == InputFormat::zhang) {
    o.delimiter = ',';
    o.label_column = 0;
    o.labels = LabelKind::index1;
  }
  o.class_names = info.encoding.classes;
  o.chars = info.encoding.ids == engine::IdType::characters;
  o.words = info.encoding.ids == engine::IdType::words;
  o.char_length = static_cast<int>(std::max<std::int64_t>(info.encoding.char_length, 1));
  o.word_length = static_cast<int>(std::max<std::int64_t>(info.encoding.word_length, 1));
  o.validation_fraction = 0.0;
  return o;
}

TextEncoder::TextEncoder(const train::CheckpointInfo& info, preprocess::PreprocessOptions options)
    : options_(std::move(options)) {
  if (options_.chars && info.encoding.alphabet != quantizer_.alphabet())
    throw InputError("the checkpoint's alphabet '" + info.encoding.alphabet + "' is not this build's '" +
                     quantizer_.alphabet() + "'");
  if (options_.chars && info.encoding.char_order != "reversed")
    throw InputError("the checkpoint's character order '" + info.encoding.char_order + "' is not 'reversed'");
  if (options_.words) {
    if (info.text.tokenizer != preprocess::kTokenizerName)
      throw InputError("the checkpoint's tokenizer is '" + info.text.tokenizer + "', this build uses '" +
                       std::string(preprocess::kTokenizerName) + "'");
    vocabulary_ =
        preprocess::Vocabulary::from_words(info.text.vocab, std::vector<std::int64_t>(info.text.vocab.size(), 0));
  }
  encoder_ = std::make_unique<preprocess::RowEncoder>(options_, quantizer_);
}

void TextEncoder::encode(const preprocess::Block& block, preprocess::BlockResult& result) {
  encoder_->encode(block, vocabulary_ ? &*vocabulary_ : nullptr, result);
}

void softmax(const float* logits, std::int64_t classes, float* probabilities) {
  const float top = *std::max_element(logits, logits + classes);
  float sum = 0.0f;
  for (std::int64_t c = 0; c < classes; ++c) sum += probabilities[c] = std::exp(logits[c] - top);
  for (std::int64_t c = 0; c < classes; ++c) probabilities[c] /= sum;
}

struct Classifier::Impl {
  train::CheckpointInfo info;
  std::vector<std::string> names;
  std::unique_ptr<engine::Backend<float>> backend;
  std::unique_ptr<engine::Model<float>> model;
  std::unique_ptr<train::TrainingStep<float>> step;
  std::int64_t max_batch = 0;
  std::vector<float> host_logits;
  std::vector<std::int32_t> scratch;
};

Classifier::Classifier(const std::string& checkpoint, const train::CheckpointInfo& info,
                       const ClassifierOptions& options)
    : impl_(std::make_unique<Impl>()) {
  if (options.max_batch < 1) throw OptionError("--batch-size must be at least 1");
  engine::validate(options.backend);
  Impl& m = *impl_;
  m.info = info;
  m.max_batch = options.max_batch;
  const std::int64_t classes = info.model.classes;
  for (std::int64_t c = 0; c < classes; ++c)
    m.names.push_back(c < static_cast<std::int64_t>(info.encoding.classes.size())
                          ? info.encoding.classes[static_cast<std::size_t>(c)]
                          : std::to_string(c));
  m.backend = train::make_backend(options.backend, options.local_rank, options.local_size);
  engine::ModelConfig config = info.model;
  config.fuse_input = options.backend.onehot_fusion;
  m.model = std::make_unique<engine::Model<float>>(config, m.backend->memory());
  train::load_checkpoint<float>(checkpoint, *m.model, nullptr);
  m.model->reserve(static_cast<engine::Index>(m.max_batch));
  train::StepSetup setup;
  setup.max_rows = static_cast<engine::Index>(m.max_batch);
  m.step = std::make_unique<train::TrainingStep<float>>(*m.model, *m.backend, nullptr, setup);
}

Classifier::~Classifier() = default;

const train::CheckpointInfo& Classifier::info() const {
  return impl_->info;
}
const std::vector<std::string>& Classifier::class_names() const {
  return impl_->names;
}
std::int64_t Classifier::classes() const {
  return static_cast<std::int64_t>(impl_->names.size());
}
std::int64_t Classifier::max_batch() const {
  return impl_->max_batch;
}
std::string Classifier::backend_name() const {
  return impl_->backend->name();
}

void Classifier::classify(const engine::InputBatch& batch, float* probabilities, std::int32_t* predicted) {
  Impl& m = *impl_;
  if (batch.n > m.max_batch)
    throw Error("a batch of " + std::to_string(batch.n) + " rows exceeds the classifier's " +
                std::to_string(m.max_batch));
  if (batch.n == 0) return;
  const float* logits = m.step->infer({batch});
  const engine::Memory& memory = m.model->memory();
  const std::int64_t classes = this->classes();
  if (!memory.is_host()) {
    m.host_logits.resize(static_cast<std::size_t>(batch.n * classes));
    memory.copy_to_host(m.host_logits.data(), logits, m.host_logits.size() * sizeof(float));
    logits = m.host_logits.data();
  }
  for (engine::Index i = 0; i < batch.n; ++i) {
    softmax(logits + i * classes, classes, probabilities + i * classes);
    const float* row = logits + i * classes;
    predicted[i] = static_cast<std::int32_t>(std::max_element(row, row + classes) - row);
  }
}

void Classifier::classify(const preprocess::EncodedRows& rows, std::size_t begin, std::size_t n, float* probabilities,
                          std::int32_t* predicted) {
  Impl& m = *impl_;
  const auto count = static_cast<engine::Index>(n);
  if (m.info.encoding.ids == engine::IdType::characters) {
    const std::int64_t L = m.info.encoding.char_length;
    classify(engine::InputBatch::characters(rows.chars.data() + begin * static_cast<std::size_t>(L), count, L),
             probabilities, predicted);
    return;
  }
  const auto W = static_cast<std::size_t>(m.info.encoding.word_length);
  m.scratch.assign(rows.words.begin() + static_cast<std::ptrdiff_t>(begin * W),
                   rows.words.begin() + static_cast<std::ptrdiff_t>((begin + n) * W));
  const std::int32_t* lengths = rows.word_lengths.data() + begin;
  const std::int64_t cut = train::cut_to_longest(m.scratch.data(), count, static_cast<std::int64_t>(W), lengths);
  classify(engine::InputBatch::words(m.scratch.data(), count, cut, lengths), probabilities, predicted);
}

}  // namespace textscale::predict
