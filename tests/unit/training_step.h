// One training step of a published model on a backend against the reference backend in double,
// for the backend tests (CPU bf16, GPU): the same initial weights, the same batch (dropout masks
// are keyed by sample, so they agree). Compared: the loss, every parameter's gradient, the
// batch-norm running statistics, the weights after one SGD step with momentum, and the inference
// logits of the updated model, each as a relative norm ||got - want|| / ||want||.
#pragma once

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "textscale/engine/model.h"
#include "textscale/engine/reference_backend.h"
#include "textscale/train/optimizer.h"
#include "textscale/train/training_step.h"

namespace textscale::testing {

using namespace textscale::engine;

constexpr Index kBatch = 8;
constexpr double kLearningRate = 0.01;

inline train::OptimizerConfig sgd() {
  train::OptimizerConfig opt;
  opt.momentum = 0.9;
  opt.weight_decay = 1e-4;
  return opt;
}

inline ModelConfig config_of(const std::string& name) {
  ModelConfig config;
  config.name = name;
  config.classes = 4;
  return config;
}

struct Batch {
  std::vector<std::uint8_t> codes;
  std::vector<std::int32_t> labels;
};

inline Batch make_batch(const ModelConfig& config) {
  std::mt19937_64 rng(21);
  Batch b;
  b.codes.resize(static_cast<std::size_t>(kBatch * config.length));
  for (auto& c : b.codes) c = static_cast<std::uint8_t>(rng() % 70);
  b.labels.resize(static_cast<std::size_t>(kBatch));
  for (auto& l : b.labels) l = static_cast<std::int32_t>(rng() % 4);
  return b;
}

// What one training step produces, on the host in double.
struct StepResult {
  double loss = 0;
  std::vector<double> gradients, state, weights_after, inference_logits;
};

template <typename T>
inline std::vector<double> to_host(const Buffer<T>& b) {
  std::vector<T> raw(b.size());
  if (!raw.empty()) b.memory().copy_to_host(raw.data(), b.data(), raw.size() * sizeof(T));
  return {raw.begin(), raw.end()};
}

// A model (initialised from seed 3), its optimizer and one batch on a backend, stepped by the
// training step `train` takes (train::TrainingStep).
template <typename T>
struct Trainee {
  Backend<T>& backend;
  Model<T> model;
  train::Optimizer<T> optimizer;
  Buffer<std::uint8_t> codes;
  Buffer<std::int32_t> labels;
  train::TrainingStep<T> step_;
  train::StepInput input;

  Trainee(Backend<T>& b, const ModelConfig& config, const train::OptimizerConfig& opt, const Batch& batch)
      : backend(b),
        model(config, b.memory()),
        optimizer(opt, model.params().trained_count(), b.memory()),
        codes(batch.codes.size(), b.memory()),
        labels(batch.labels.size(), b.memory()),
        step_(model, b, &optimizer, setup()),
        input{InputBatch::characters(codes.data(), kBatch, config.length), labels.data(), kBatch, 0, true} {
    model.params().initialize(3);
    model.reserve(kBatch);
    b.memory().copy_to_device(codes.data(), batch.codes.data(), batch.codes.size());
    b.memory().copy_to_device(labels.data(), batch.labels.data(), batch.labels.size() * sizeof(std::int32_t));
  }
  static train::StepSetup setup() {
    train::StepSetup s;
    s.seed = 11;  // dropout masks keyed by (seed, step, sample) agree between backends
    s.max_rows = kBatch;
    return s;
  }
  // Forward and backward in training mode; returns the mean loss. The optimizer is not stepped.
  double compute_gradients() {
    step_.compute_gradients(input, 0);
    return step_.results().loss_sum / static_cast<double>(kBatch);
  }
  // The whole step: gradients, then the optimizer's update with kLearningRate.
  void step() { step_.run(input, 0, kLearningRate); }
  // After compute_gradients: the optimizer's update.
  void update() {
    step_.queue_update(kLearningRate);
    step_.results();
  }
  std::vector<double> inference_logits() {
    const T* logits = step_.infer(input);
    std::vector<T> host(static_cast<std::size_t>(kBatch * model.config().classes));
    backend.memory().copy_to_host(host.data(), logits, host.size() * sizeof(T));
    return {host.begin(), host.end()};
  }
};

template <typename T>
inline StepResult run_step(Backend<T>& backend, const ModelConfig& config, const Batch& batch) {
  Trainee<T> t(backend, config, sgd(), batch);
  StepResult r;
  r.loss = t.compute_gradients();
  r.gradients = to_host(t.model.params().gradients());
  r.state = to_host(t.model.params().state());
  t.update();
  r.weights_after = to_host(t.model.params().values());
  r.inference_logits = t.inference_logits();
  return r;
}

// ||got - want|| / ||want|| over [offset, offset + count); a NaN gives NaN, which fails every bound.
inline double relative_error(const std::vector<double>& got, const std::vector<double>& want, Index offset,
                             Index count) {
  double error = 0, norm = 0;
  for (Index i = offset; i < offset + count; ++i) {
    const auto k = static_cast<std::size_t>(i);
    error += (got[k] - want[k]) * (got[k] - want[k]);
    norm += want[k] * want[k];
  }
  return norm > 0 ? std::sqrt(error / norm) : std::sqrt(error);
}

// The step of each model on a reference backend in double, computed once per model.
template <typename Reference = ReferenceBackend<double>>
inline const StepResult& reference(const std::string& name) {
  static std::map<std::string, StepResult> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    Reference backend;
    const ModelConfig config = config_of(name);
    it = cache.emplace(name, run_step(backend, config, make_batch(config))).first;
  }
  return it->second;
}

// Relative-error bounds of a backend's step against the double reference; `loss` also bounds the
// batch-norm running statistics.
struct StepBounds {
  double gradient, loss, weights, logits;
};

// The step on `backend` against the same step on `Reference`, per tensor.
template <typename Reference = ReferenceBackend<double>>
inline void check_step(Backend<float>& backend, const std::string& name, const std::string& label,
                       const StepBounds& bound) {
  const ModelConfig config = config_of(name);
  const StepResult& want = reference<Reference>(name);
  const StepResult got = run_step(backend, config, make_batch(config));

  const double loss = std::abs(got.loss - want.loss) / std::abs(want.loss);
  BOOST_TEST_MESSAGE(label << " loss: relative error " << loss << " (" << got.loss << ", reference " << want.loss
                           << ")");
  BOOST_TEST(loss <= bound.loss,
             label << " loss: " << got.loss << ", double reference " << want.loss << ": relative error " << loss);
  Model<float> layout(config);  // tensor names and offsets (host memory, never run)
  double worst = 0;
  for (const TensorInfo& t : layout.params().tensors()) {
    if (t.trained) {
      const double e = relative_error(got.gradients, want.gradients, t.offset, t.count);
      worst = std::max(worst, e);
      BOOST_TEST_MESSAGE(label << " gradient " << t.name << ": relative error " << e);
      BOOST_TEST(e <= bound.gradient, label << " gradient of " << t.name << ": relative error " << e);
    } else {
      const double e = relative_error(got.state, want.state, t.offset, t.count);
      BOOST_TEST_MESSAGE(label << " running statistic " << t.name << ": relative error " << e);
      BOOST_TEST(e <= bound.loss, label << " running statistic " << t.name << ": relative error " << e);
    }
  }
  BOOST_TEST_MESSAGE(label << ": worst gradient relative error " << worst);
  const Index trained = layout.params().trained_count();
  const double weights = relative_error(got.weights_after, want.weights_after, 0, trained);
  BOOST_TEST(weights <= bound.weights, label << " weights after one step: relative error " << weights);
  const double logits =
      relative_error(got.inference_logits, want.inference_logits, 0, static_cast<Index>(want.inference_logits.size()));
  BOOST_TEST(logits <= bound.logits, label << " inference logits after one step: relative error " << logits);
  BOOST_TEST_MESSAGE(label << ": weights " << weights << ", inference logits " << logits);
}

}  // namespace textscale::testing
