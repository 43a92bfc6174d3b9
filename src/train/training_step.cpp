#include "textscale/train/training_step.h"

#include <chrono>
#include <cmath>
#include <type_traits>
#include <utility>

#include "textscale/common/error.h"

namespace textscale::train {

using engine::Index;

namespace {

// Positions in TrainingStep::stats_.
constexpr std::size_t kLoss = 0, kCorrect = 1, kBadLabel = 2, kGradient = 3, kBuckets = 4;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

template <typename T>
TrainingStep<T>::TrainingStep(engine::Model<T>& model, engine::Backend<T>& backend, Optimizer<T>* optimizer,
                              const StepSetup& setup)
    : model_(model), backend_(backend), optimizer_(optimizer), setup_(setup) {
  if constexpr (!std::is_same_v<T, float>)
    if (setup.reducer || setup.stats_comm || setup.allreduce_sum || setup.hooks)
      throw Error("training step: data parallelism and hooks need float");
  const engine::Memory& memory = backend.memory();
  ctx_ = engine::Context<T>{&backend, nullptr, true, setup.seed, 0};
  ctx_.allreduce_sum = setup.allreduce_sum;
  const auto rows = static_cast<std::size_t>(std::max<Index>(setup.max_rows, 1));
  if (!memory.is_host()) {
    const std::size_t id_bytes = model.input_ids() == engine::IdType::characters ? 1 : sizeof(std::int32_t);
    ids_.resize(rows * static_cast<std::size_t>(model.config().length) * id_bytes, memory);
    labels_.resize(rows, memory);
  }
  diff_.resize(rows * static_cast<std::size_t>(model.config().classes), memory);
  const std::size_t buckets = setup.reducer ? setup.reducer->buckets() : 0;
  stats_.resize(kBuckets + buckets, memory);
  host_stats_.assign(stats_.size(), 0.0);
  memory.copy_to_device(stats_.data(), host_stats_.data(), host_stats_.size() * sizeof(double));
  if constexpr (std::is_same_v<T, float>) {
    if (setup.reducer) {
      setup.reducer->on_start([this](std::size_t bucket, const float* data, Index count) {
        backend_.sum_squares_to(count, data, stats_.data() + kBuckets + bucket);
      });
      gradients_ready_ = [this](Index offset) { setup_.reducer->ready_from(offset); };
      ctx_.on_gradients_ready = &gradients_ready_;
    }
  }
}

namespace {

// Grows `buffer` to at least `count` elements (a staging buffer keeps its memory between steps).
template <typename U>
U* at_least(engine::Buffer<U>& buffer, std::size_t count, const engine::Memory& memory) {
  if (buffer.size() < count) buffer.resize(count, memory);
  return buffer.data();
}

}  // namespace

template <typename T>
std::pair<engine::InputBatch, const std::int32_t*> TrainingStep<T>::stage(const StepInput& in) {
  const engine::Memory& memory = backend_.memory();
  const engine::InputBatch& b = in.batch;
  if (in.in_backend_memory || memory.is_host()) return {b, in.labels};
  if (b.n > setup_.max_rows)
    throw Error("training step: " + std::to_string(b.n) + " rows, more than the " + std::to_string(setup_.max_rows) +
                " its buffers hold");
  b.validate();
  const auto n = static_cast<std::size_t>(b.n);
  std::uint8_t* ids = at_least(ids_, b.bytes(), memory);
  memory.copy_to_device(ids, b.ids, b.bytes());
  std::int32_t* lengths = nullptr;
  std::int32_t* sentence_lengths = nullptr;
  if (b.lengths) {
    lengths = at_least(lengths_, n, memory);
    memory.copy_to_device(lengths, b.lengths, n * sizeof(std::int32_t));
  }
  if (b.sentences.lengths) {
    const std::size_t count = n * static_cast<std::size_t>(b.sentences.count);
    sentence_lengths = at_least(sentence_lengths_, count, memory);
    memory.copy_to_device(sentence_lengths, b.sentences.lengths, count * sizeof(std::int32_t));
  }
  if (in.labels) memory.copy_to_device(labels_.data(), in.labels, n * sizeof(std::int32_t));
  return {b.with_arrays(ids, lengths, sentence_lengths), labels_.data()};
}

template <typename T>
void TrainingStep<T>::compute_gradients(const StepInput& in, std::int64_t step) {
  if (setup_.hooks) setup_.hooks->before_step(step);
  const engine::Memory& memory = backend_.memory();
  const Index n = in.batch.n, classes = model_.config().classes;
  const Index global_rows = in.global_rows > 0 ? in.global_rows : n;
  ctx_.training = true;
  ctx_.step = step;
  ctx_.sample_offset = in.sample_offset;
  const auto start = std::chrono::steady_clock::now();
  if (setup_.reducer) setup_.reducer->begin();
  if (n > 0) {
    const auto [batch, labels] = stage(in);
    const T* logits = model_.forward(ctx_, batch);
    backend_.softmax_cross_entropy_stats(n, classes, logits, labels, diff_.data(), stats_.data());
    if constexpr (std::is_same_v<T, float>)
      if (setup_.hooks) setup_.hooks->after_loss(step, memory, stats_.data(), diff_.data(), n * classes);
    // The mean over this rank's n rows becomes its share of the global batch's mean.
    if (n != global_rows)
      backend_.scale(n * classes, diff_.data(), static_cast<double>(n) / static_cast<double>(global_rows));
    model_.backward(ctx_, batch, diff_.data());
  } else {
    model_.params().zero_gradients();
    const double none[kBadLabel + 1] = {0, 0, 0};
    memory.copy_to_device(stats_.data(), none, sizeof none);
  }
  if (setup_.hooks) setup_.hooks->after_backward(step, n);
  if (setup_.time_compute_exactly) memory.synchronize();
  compute_seconds_ = seconds_since(start);
  if (setup_.reducer) setup_.reducer->finish();
  // Batch-norm running statistics: the mean over the ranks, over the gradients' communicator.
  if constexpr (std::is_same_v<T, float>) {
    auto& params = model_.params();
    if (setup_.stats_comm && setup_.stats_comm->size() > 1 && params.state().size() > 0) {
      setup_.stats_comm->allreduce(params.state().data(), params.state().size(), dist::ReduceOp::sum);
      backend_.scale(static_cast<Index>(params.state().size()), params.state().data(), 1.0 / setup_.stats_comm->size());
    }
  }
}

template <typename T>
void TrainingStep<T>::queue_update(double lr) {
  if (!optimizer_) throw Error("training step: no optimizer to update the model with");
  // Queued whatever the step's results turn out to be: a gradient that is not finite changes
  // nothing (and a bad label or a loss that is not finite makes the gradient NaN on every rank).
  optimizer_->queue_step(backend_, model_.params(), lr, stats_.data() + kGradient);
}

template <typename T>
StepResults TrainingStep<T>::results() {
  backend_.memory().copy_to_host(host_stats_.data(), stats_.data(), host_stats_.size() * sizeof(double));
  StepResults r;
  r.loss_sum = host_stats_[kLoss];
  r.correct = static_cast<std::int64_t>(host_stats_[kCorrect]);
  r.bad_label_row = static_cast<std::int64_t>(host_stats_[kBadLabel]) - 1;
  r.gradient_sum_squares = host_stats_[kGradient];
  r.skipped = !std::isfinite(r.gradient_sum_squares);
  if (r.skipped && optimizer_) optimizer_->skipped();
  r.local_nonfinite = !setup_.reducer && r.skipped;
  for (std::size_t b = kBuckets; b < host_stats_.size(); ++b)
    r.local_nonfinite = r.local_nonfinite || !std::isfinite(host_stats_[b]);
  r.compute_seconds = compute_seconds_;
  r.reduce_wait_seconds = setup_.reducer ? setup_.reducer->wait_seconds() : 0.0;
  return r;
}

template <typename T>
StepResults TrainingStep<T>::run(const StepInput& in, std::int64_t step, double lr) {
  compute_gradients(in, step);
  queue_update(lr);
  return results();
}

template <typename T>
const T* TrainingStep<T>::infer(const StepInput& in) {
  ctx_.training = false;
  return model_.forward(ctx_, stage(in).first);
}

template class TrainingStep<float>;
template class TrainingStep<double>;

}  // namespace textscale::train
