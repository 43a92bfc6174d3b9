// Optimizers over the flat parameter buffer, and learning-rate schedules.
#pragma once

#include <cstdint>
#include <string>

#include "textscale/engine/backend.h"
#include "textscale/engine/params.h"

namespace textscale::train {

struct OptimizerConfig {
  std::string kind = "sgd";  // sgd (with momentum) | adam
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 0;  // L2, added to the gradient (PyTorch's convention)
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
  double clip_norm = 0;  // > 0: scale the gradient to at most this global L2 norm
  // Tensors with a row-sparse gradient (word embeddings, params.h): "dense" updates every row as
  // the dense gradient would (momentum, Adam's moments and weight decay move rows the batch did
  // not touch); "lazy" updates only the rows the batch touched, with their velocity or moments
  // (PyTorch's SparseAdam). Other tensors are updated densely either way.
  std::string embedding_update = "dense";
};

struct ScheduleConfig {
  std::string kind = "constant";  // constant | step | factor
  std::int64_t step_epochs = 3;   // step: multiply by step_factor every step_epochs epochs (Zhang)
  double step_factor = 0.5;
  double epoch_factor = 0.94;     // factor: multiply by this every epoch
  std::int64_t warmup_steps = 0;  // linear warm-up from lr/warmup to lr over the first steps
};

// Learning rate for the given 0-based epoch and 0-based global step.
double learning_rate(const OptimizerConfig& optimizer, const ScheduleConfig& schedule, std::int64_t epoch,
                     std::int64_t step);

// Throws InputError for unknown kinds or out-of-range values (the message names the option).
void validate(const OptimizerConfig& optimizer, const ScheduleConfig& schedule);

// Holds the optimizer state (SGD: velocity; Adam: first and second moments), each a flat buffer
// parallel to the parameters, and applies steps.
template <typename T>
class Optimizer {
 public:
  // The state lives in `memory`, the parameters' (Model::memory()).
  Optimizer(const OptimizerConfig& config, engine::Index parameters,
            const engine::Memory& memory = engine::host_memory());

  // Queues one step with learning rate `lr` on params.values() from params.gradients() without
  // waiting for the backend's device: the gradient's sum of squares goes to `sum_squares` (one
  // double in the backend's memory), clipping and the decision to skip are taken there
  // (Backend::step_factor: a gradient that is not finite changes nothing), then the update.
  // When the sum turns out not finite, call skipped() before the next step.
  void queue_step(engine::Backend<T>& backend, engine::ParamStore<T>& params, double lr, double* sum_squares);
  // The step queue_step skipped did not count (Adam's bias correction counts steps taken).
  void skipped() { --steps_; }
  // queue_step, then waits for the gradient's norm: returns it, or throws (having changed
  // nothing) when it is not finite.
  double step(engine::Backend<T>& backend, engine::ParamStore<T>& params, double lr);

  [[nodiscard]] int slot_count() const { return config_.kind == "adam" ? 2 : 1; }
  [[nodiscard]] engine::Buffer<T>& slot(int i) { return i == 0 ? first_ : second_; }
  [[nodiscard]] std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t steps) { steps_ = steps; }
  [[nodiscard]] const OptimizerConfig& config() const { return config_; }

 private:
  OptimizerConfig config_;
  engine::Buffer<T> first_, second_;
  engine::Buffer<T> factor_;        // Backend::step_factor's result
  engine::Buffer<double> own_sum_;  // step()'s sum of squares
  std::int64_t steps_ = 0;
};

extern template class Optimizer<float>;
extern template class Optimizer<double>;

}  // namespace textscale::train
