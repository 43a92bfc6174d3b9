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
  if (o.kind != "sgd" && o.kind != "adam") throw OptionError("--optimizer must be sgd or adam, not '" + o.kind + "'");
  // Written so that NaN fails every check (a comparison with NaN is false) and infinity the
  // finiteness ones.
  const auto in_unit = [](double v) { return v >= 0 && v < 1; };
  const auto finite_positive = [](double v) { return std::isfinite(v) && v > 0; };
  const auto finite_non_negative = [](double v) { return std::isfinite(v) && v >= 0; };
  if (!finite_positive(o.lr)) throw OptionError("--lr must be a positive finite number");
  if (o.embedding_update != "dense" && o.embedding_update != "lazy")
    throw OptionError("--embedding-update must be dense or lazy, not '" + o.embedding_update + "'");
  if (!in_unit(o.momentum)) throw OptionError("--momentum must be in [0, 1)");
  if (!finite_non_negative(o.weight_decay)) throw OptionError("--weight-decay must be a finite number >= 0");
  if (!finite_non_negative(o.clip_norm)) throw OptionError("--clip-norm must be a finite number >= 0");
  if (!in_unit(o.beta1)) throw OptionError("--adam-beta1 must be in [0, 1)");
  if (!in_unit(o.beta2)) throw OptionError("--adam-beta2 must be in [0, 1)");
  if (!finite_positive(o.epsilon)) throw OptionError("Adam's epsilon must be a positive finite number");
  if (!finite_positive(s.step_factor)) throw OptionError("--step-factor must be a positive finite number");
  if (!finite_positive(s.epoch_factor)) throw OptionError("--epoch-factor must be a positive finite number");
  if (s.kind != "constant" && s.kind != "step" && s.kind != "factor")
    throw OptionError("--schedule must be constant, step or factor, not '" + s.kind + "'");
  if (s.step_epochs < 1) throw OptionError("--step-epochs must be at least 1");
  if (s.warmup_steps < 0) throw OptionError("--warmup-steps must not be negative");
}

template <typename T>
Optimizer<T>::Optimizer(const OptimizerConfig& config, engine::Index parameters, const engine::Memory& memory)
    : config_(config) {
  first_.resize(static_cast<std::size_t>(parameters), memory);
  if (config.kind == "adam") second_.resize(static_cast<std::size_t>(parameters), memory);
  factor_.resize(1, memory);
  own_sum_.resize(1, memory);
}

namespace {

// Calls fn(begin, count) for each range of the flat buffer between the row-sparse tensors.
template <typename Fn>
void for_dense_ranges(const std::vector<engine::RowSparse>& sparse, engine::Index count, Fn fn) {
  engine::Index begin = 0;
  for (const auto& s : sparse) {
    if (s.offset > begin) fn(begin, s.offset - begin);
    begin = s.offset + s.row_count * s.row_size;
  }
  if (count > begin) fn(begin, count - begin);
}

// The gradient's sum of squares reading only the listed rows of row-sparse tensors (host memory):
// the dense ranges by the backend, then each listed row in order, in double.
template <typename T>
double row_sparse_sum_squares(engine::Backend<T>& backend, engine::ParamStore<T>& params) {
  const T* grad = params.gradients().data();
  double total = 0;
  for_dense_ranges(params.row_sparse(), params.trained_count(), [&](engine::Index begin, engine::Index count) {
    total += backend.sum_squares(count, grad + begin);
  });
  for (const auto& s : params.row_sparse())
    for (const std::int32_t row : s.rows) {
      const T* g = grad + s.offset + static_cast<engine::Index>(row) * s.row_size;
      for (engine::Index e = 0; e < s.row_size; ++e) total += static_cast<double>(g[e]) * static_cast<double>(g[e]);
    }
  return total;
}

}  // namespace

template <typename T>
void Optimizer<T>::queue_step(engine::Backend<T>& backend, engine::ParamStore<T>& params, double lr,
                              double* sum_squares) {
  const engine::Index count = params.trained_count();
  T* values = params.values().data();
  const T* grad = params.gradients().data();
  const auto& sparse = params.row_sparse();
  if (sparse.empty())
    backend.sum_squares_to(count, grad, sum_squares);
  else
    *sum_squares = row_sparse_sum_squares(backend, params);
  backend.step_factor(sum_squares, config_.clip_norm, factor_.data());
  ++steps_;
  const bool adam = config_.kind == "adam";
  const auto dense = [&](engine::Index begin, engine::Index n) {
    if (adam)
      backend.adam_step(n, values + begin, grad + begin, first_.data() + begin, second_.data() + begin, lr,
                        config_.beta1, config_.beta2, config_.epsilon, config_.weight_decay, steps_, factor_.data());
    else
      backend.sgd_step(n, values + begin, grad + begin, first_.data() + begin, lr, config_.momentum,
                       config_.weight_decay, factor_.data());
  };
  if (sparse.empty() || config_.embedding_update == "dense") {
    dense(0, count);
    return;
  }
  for_dense_ranges(sparse, count, dense);
  for (const auto& s : sparse) {
    const auto rows = static_cast<engine::Index>(s.rows.size());
    if (adam)
      backend.adam_step_rows(rows, s.rows.data(), s.row_size, values + s.offset, grad + s.offset,
                             first_.data() + s.offset, second_.data() + s.offset, lr, config_.beta1, config_.beta2,
                             config_.epsilon, config_.weight_decay, steps_, factor_.data());
    else
      backend.sgd_step_rows(rows, s.rows.data(), s.row_size, values + s.offset, grad + s.offset,
                            first_.data() + s.offset, lr, config_.momentum, config_.weight_decay, factor_.data());
  }
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
