// The one thread that owns the model. It builds the TextEncoder and the Classifier itself (so
// the backend's thread count applies to it), then takes batches from the queue until the queue is
// closed and drained: it encodes every text of a batch as `textscale preprocess` would, runs the
// model over the good rows in slices of at most max_batch, and answers each job with its rows'
// probabilities, or with a 422 naming the first text the encoder refused.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "textscale/predict/classifier.h"
#include "textscale/serve/batch_queue.h"
#include "textscale/serve/metrics.h"
#include "textscale/serve/serve_options.h"

namespace textscale::serve {

struct ModelSetup {
  std::string checkpoint;
  train::CheckpointInfo info;             // read_classifier_info's
  preprocess::PreprocessOptions text;     // how request texts are encoded
  predict::ClassifierOptions classifier;  // backend and max_batch
};

// The checkpoint's attributes and text encoding (predict::read_classifier_info), read with the
// unescaping `options` ask for. Throws InputError for a checkpoint that cannot be served.
[[nodiscard]] ModelSetup model_setup(const ModelOptions& options, std::int64_t max_batch);

class InferenceWorker {
 public:
  InferenceWorker(ModelSetup setup, BatchQueue& queue, ServeMetrics& metrics);
  ~InferenceWorker();
  InferenceWorker(const InferenceWorker&) = delete;
  InferenceWorker& operator=(const InferenceWorker&) = delete;

  // Starts the thread and returns once the model is loaded and has run one batch of each size
  // 1 and max_batch; rethrows what stopped it from loading.
  void start();
  // Waits for the thread, which ends once the queue is closed and drained.
  void join();

  // Valid after start().
  [[nodiscard]] const std::vector<std::string>& class_names() const { return class_names_; }
  [[nodiscard]] const std::string& backend_name() const { return backend_name_; }
  [[nodiscard]] int threads() const { return threads_; }

 private:
  void run(std::promise<void>& ready);
  void load();
  void classify(const std::vector<std::shared_ptr<Job>>& jobs);
  // Encodes the texts of `jobs` into encoded_; marks the jobs with a refused text.
  void encode(const std::vector<std::shared_ptr<Job>>& jobs);

  ModelSetup setup_;
  BatchQueue& queue_;
  ServeMetrics& metrics_;
  std::thread thread_;
  std::unique_ptr<predict::TextEncoder> encoder_;
  std::unique_ptr<predict::Classifier> classifier_;
  std::vector<std::string> class_names_;
  std::string backend_name_;
  int threads_ = 0;
  bool serving_ = false;  // batches are counted in the metrics once warmed up
  preprocess::BlockResult encoded_;
  std::vector<float> probabilities_;     // [rows, classes]
  std::vector<std::int32_t> predicted_;  // [rows]
};

}  // namespace textscale::serve
