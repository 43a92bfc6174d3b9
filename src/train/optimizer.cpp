#include "textscale/train/optimizer.h"

#include <cmath>

#include "textscale/common/error.h"

namespace textscale::train {

double learning_rate(const OptimizerConfig& o, const ScheduleConfig& s, std::int64_t epoch, std::int64_t step) {
  double lr = o.lr;
  if (s.kind == "step")
    lr *= std::pow(s.step_factor, static_cast<double>(epoch / s.step_epochs));
  else if (s.kind == "factor")
    lr *= std::pow(s.epoch_factor, static_cast<double>(epoch));
  if (s.warmup_steps > 0 && step < s.warmup_steps)
    lr *= static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  return lr;
}

void validate(const OptimizerConfig& o, const ScheduleConfig& s) {
  if (o.kind != "sgd" && o.kind != "adam") throw InputError("--optimizer must be sgd or adam, not '" + o.kind + "'");
  // Written so that NaN fails every check (a comparison with NaN is false) and infinity the
  // finiteness ones.
  const auto in_unit = [](double v) { return v >= 0 && v < 1; };
  const auto finite_positive = [](double v) { return std::isfinite(v) && v > 0; };
  const auto finite_non_negative = [](double v) { return std::isfinite(v) && v >= 0; };
  if (!finite_positive(o.lr)) throw InputError("--lr must be a positive finite number");
  if (!in_unit(o.momentum)) throw InputError("--momentum must be in [0, 1)");
  if (!finite_non_negative(o.weight_decay)) throw InputError("--weight-decay must be a finite number >= 0");
  if (!finite_non_negative(o.clip_norm)) throw InputError("--clip-norm must be a finite number >= 0");
  if (!in_unit(o.beta1)) throw InputError("--adam-beta1 must be in [0, 1)");
  if (!in_unit(o.beta2)) throw InputError("--adam-beta2 must be in [0, 1)");
  if (!finite_positive(o.epsilon)) throw InputError("Adam's epsilon must be a positive finite number");
  if (!finite_positive(s.step_factor)) throw InputError("--step-factor must be a positive finite number");
  if (!finite_positive(s.epoch_factor)) throw InputError("--epoch-factor must be a positive finite number");
  if (s.kind != "constant" && s.kind != "step" && s.kind != "factor")
    throw InputError("--schedule must be constant, step or factor, not '" + s.kind + "'");
  if (s.step_epochs < 1) throw InputError("--step-epochs must be at least 1");
  if (s.warmup_steps < 0) throw InputError("--warmup-steps must not be negative");
}

template <typename T>
Optimizer<T>::Optimizer(const OptimizerConfig& config, engine::Index parameters, const engine::Memory& memory)
    : config_(config) {
  first_.resize(static_cast<std::size_t>(parameters), memory);
  if (config.kind == "adam") second_.resize(static_cast<std::size_t>(parameters), memory);
  factor_.resize(1, memory);
  own_sum_.resize(1, memory);
}

template <typename T>
void Optimizer<T>::queue_step(engine::Backend<T>& backend, engine::ParamStore<T>& params, double lr,
                              double* sum_squares) {
  const engine::Index count = params.trained_count();
  const T* grad = params.gradients().data();
  backend.sum_squares_to(count, grad, sum_squares);
  backend.step_factor(sum_squares, config_.clip_norm, factor_.data());
  ++steps_;
  if (config_.kind == "adam")
    backend.adam_step(count, params.values().data(), grad, first_.data(), second_.data(), lr, config_.beta1,
                      config_.beta2, config_.epsilon, config_.weight_decay, steps_, factor_.data());
  else
    backend.sgd_step(count, params.values().data(), grad, first_.data(), lr, config_.momentum, config_.weight_decay,
                     factor_.data());
}

template <typename T>
double Optimizer<T>::step(engine::Backend<T>& backend, engine::ParamStore<T>& params, double lr) {
  queue_step(backend, params, lr, own_sum_.data());
  double sum = 0;
  backend.memory().copy_to_host(&sum, own_sum_.data(), sizeof sum);
  const double norm = std::sqrt(sum);
  if (!std::isfinite(norm)) {
    skipped();
    throw Error("the gradient is not finite (norm " + std::to_string(norm) + ") at step " + std::to_string(steps_ + 1) +
                "; lower the learning rate?");
  }
  return norm;
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace textscale::train
