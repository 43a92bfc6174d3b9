#include "textscale/serve/inference_worker.h"

#include <algorithm>
#include <exception>
#include <future>

#include "textscale/common/log.h"
#include "textscale/engine/cpu/dnnl_backend.h"

namespace textscale::serve {

ModelSetup model_setup(const ModelOptions& options, std::int64_t max_batch) {
  ModelSetup setup;
  setup.checkpoint = options.checkpoint;
  setup.info = predict::read_classifier_info(options.checkpoint, options.vocab_from);
  setup.text = predict::text_options(setup.info);
  if (options.unescape) setup.text.unescape = *options.unescape;
  setup.classifier.backend = options.backend;
  setup.classifier.max_batch = max_batch;
  return setup;
}

InferenceWorker::InferenceWorker(ModelSetup setup, BatchQueue& queue, ServeMetrics& metrics)
    : setup_(std::move(setup)), queue_(queue), metrics_(metrics) {}

InferenceWorker::~InferenceWorker() {
  if (thread_.joinable()) {
    queue_.close();
    thread_.join();
  }
}

void InferenceWorker::start() {
  std::promise<void> ready;
  std::future<void> loaded = ready.get_future();
  thread_ = std::thread([this, &ready] { run(ready); });
  try {
    loaded.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

void InferenceWorker::join() {
  if (thread_.joinable()) thread_.join();
}

void InferenceWorker::load() {
  encoder_ = std::make_unique<predict::TextEncoder>(setup_.info, setup_.text);
  classifier_ = std::make_unique<predict::Classifier>(setup_.checkpoint, setup_.info, setup_.classifier);
  class_names_ = classifier_->class_names();
  backend_name_ = classifier_->backend_name();
  threads_ = engine::DnnlBackend::threads();
  // The first pass of a batch size builds its primitives: pay for the two most common sizes now.
  for (const std::int64_t rows : {classifier_->max_batch(), std::int64_t{1}}) {
    const auto job = std::make_shared<Job>();
    job->texts.assign(static_cast<std::size_t>(rows), "warming up");
    classify({job});
  }
  serving_ = true;
}

void InferenceWorker::run(std::promise<void>& ready) {
  try {
    load();
  } catch (...) {
    ready.set_exception(std::current_exception());
    return;
  }
  ready.set_value();  // `ready` is not touched again: start() has returned
  for (;;) {
    const std::vector<std::shared_ptr<Job>> jobs = queue_.next_batch();
    if (jobs.empty()) return;
    try {
      classify(jobs);
    } catch (const std::exception& failure) {
      TS_LOG(error, "serve: a batch of " << jobs.size() << " requests failed: " << failure.what());
      for (const auto& job : jobs) job->error = RequestError{500, std::string("the model failed: ") + failure.what()};
    }
    for (const auto& job : jobs) job->done.set_value();
  }
}

void InferenceWorker::encode(const std::vector<std::shared_ptr<Job>>& jobs) {
  // One record a text, its only field the text, without a label: as predict's line reader.
  preprocess::Block block;
  block.sources.emplace_back("request");
  std::int64_t ordinal = 0;
  for (const auto& job : jobs)
    for (const std::string& text : job->texts) {
      preprocess::RawRecord record;
      record.ordinal = ordinal++;
      record.preset_label = preprocess::kUnlabelled;
      record.first_field = static_cast<std::uint32_t>(block.fields.size());
      record.field_count = 1;
      block.fields.push_back(preprocess::FieldSpan{static_cast<std::uint32_t>(block.arena.size()),
                                                   static_cast<std::uint32_t>(text.size())});
      block.arena.append(text);
      block.records.push_back(std::move(record));
    }
  encoded_ = preprocess::BlockResult{};
  encoder_->encode(block, encoded_);
  // A job with a refused text is answered 422 naming its first such text.
  std::size_t job = 0;
  std::int64_t first = 0;
  for (const preprocess::BadRow& bad : encoded_.bad) {
    while (bad.ordinal >= first + static_cast<std::int64_t>(jobs[job]->texts.size()))
      first += static_cast<std::int64_t>(jobs[job++]->texts.size());
    Job& refused = *jobs[job];
    if (refused.error.status != 0) continue;
    const std::string where = refused.single ? "\"text\"" : "texts[" + std::to_string(bad.ordinal - first) + "]";
    std::string reason = preprocess::to_string(bad.reason);
    if (bad.reason == preprocess::BadRowReason::invalid_utf8) reason += " (" + bad.detail + ")";
    refused.error = RequestError{422, where + ": " + reason};
  }
}

void InferenceWorker::classify(const std::vector<std::shared_ptr<Job>>& jobs) {
  encode(jobs);
  const std::size_t classes = class_names_.size();
  const std::size_t rows = encoded_.train.rows();
  probabilities_.resize(rows * classes);
  predicted_.resize(rows);
  const auto max_batch = static_cast<std::size_t>(classifier_->max_batch());
  for (std::size_t begin = 0; begin < rows; begin += max_batch) {
    const std::size_t n = std::min(max_batch, rows - begin);
    const auto start = Clock::now();
    classifier_->classify(encoded_.train, begin, n, probabilities_.data() + begin * classes, predicted_.data() + begin);
    if (serving_)
      metrics_.observe_batch(static_cast<std::int64_t>(n), std::chrono::duration<double>(Clock::now() - start).count());
  }
  // The good rows are in record order: hand each job its own.
  std::size_t row = 0, bad = 0;
  std::int64_t ordinal = 0;
  for (const auto& job : jobs) {
    const bool answered = job->error.status == 0;
    if (answered) {
      job->probabilities.resize(job->texts.size() * classes);
      job->predicted.resize(job->texts.size());
    }
    for (std::size_t t = 0; t < job->texts.size(); ++t, ++ordinal) {
      if (bad < encoded_.bad.size() && encoded_.bad[bad].ordinal == ordinal) {
        ++bad;
        continue;
      }
      if (answered) {
        std::copy_n(probabilities_.data() + row * classes, classes, job->probabilities.data() + t * classes);
        job->predicted[t] = predicted_[row];
      }
      ++row;
    }
  }
}

}  // namespace textscale::serve
