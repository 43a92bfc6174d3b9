#include "textscale/train/training_step.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iterator>
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
  const auto micro = static_cast<std::size_t>(setup.micro_rows > 0 ? setup.micro_rows : setup.max_rows);
  const std::size_t slots = micro > 0 ? (rows + micro - 1) / micro : 1;
  stats_.resize(kBuckets + buckets + 3 * (slots - 1), memory);
  if (slots > 1) {
    auto& params = model.params();
    accumulated_.resize(params.gradients().size(), memory);
    Index begin = 0;
    for (const engine::RowSparse& sparse : params.row_sparse()) {
      if (sparse.offset > begin) dense_ranges_.emplace_back(begin, sparse.offset);
      begin = sparse.offset + sparse.row_count * sparse.row_size;
    }
    if (params.trained_count() > begin) dense_ranges_.emplace_back(begin, params.trained_count());
    union_rows_.resize(params.row_sparse().size());
  }
  host_stats_.assign(stats_.size(), 0.0);
  memory.copy_to_device(stats_.data(), host_stats_.data(), host_stats_.size() * sizeof(double));
  if constexpr (std::is_same_v<T, float>) {
    if (setup.reducer) {
      setup.reducer->on_start([this](std::size_t bucket, const float* data, Index count) {
        float* gradients = model_.params().gradients().data();
        // The last micro-batch's dense bucket: the earlier micro-batches' sum is added just
        // before it is sent (a row-sparse range arrives packed, already merged).
        if (parts_ > 1 && data >= gradients && data < gradients + model_.params().trained_count()) {
          float* own = gradients + (data - gradients);
          backend_.add(count, own, accumulated_.data() + (data - gradients), own);
        }
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

namespace {

// Rows [begin, begin + rows) of `in`.
StepInput slice(const StepInput& in, Index begin, Index rows) {
  StepInput part = in;
  const engine::InputBatch& b = in.batch;
  part.batch.n = rows;
  part.batch.ids = static_cast<const std::uint8_t*>(b.ids) + static_cast<std::size_t>(begin * b.width) * b.id_bytes();
  if (b.lengths) part.batch.lengths = b.lengths + begin;
  if (b.sentences.lengths) part.batch.sentences.lengths = b.sentences.lengths + begin * b.sentences.count;
  if (in.labels) part.labels = in.labels + begin;
  part.sample_offset = in.sample_offset + begin;
  return part;
}

}  // namespace

template <typename T>
std::size_t TrainingStep<T>::stats_slot(std::size_t slot) const {
  const std::size_t buckets = setup_.reducer ? setup_.reducer->buckets() : 0;
  return slot == 0 ? kLoss : kBuckets + buckets + 3 * (slot - 1);
}

template <typename T>
void TrainingStep<T>::forward_backward(const StepInput& in, Index global_rows, std::size_t slot) {
  const Index n = in.batch.n, classes = model_.config().classes;
  ctx_.sample_offset = in.sample_offset;
  const auto [batch, labels] = stage(in);
  const T* logits = model_.forward(ctx_, batch);
  double* stats = stats_.data() + stats_slot(slot);
  backend_.softmax_cross_entropy_stats(n, classes, logits, labels, diff_.data(), stats);
  if constexpr (std::is_same_v<T, float>)
    if (setup_.hooks) setup_.hooks->after_loss(ctx_.step, backend_.memory(), stats, diff_.data(), n * classes);
  // The mean over these n rows becomes their share of the global batch's mean.
  if (n != global_rows)
    backend_.scale(n * classes, diff_.data(), static_cast<double>(n) / static_cast<double>(global_rows));
  model_.backward(ctx_, batch, diff_.data());
}

template <typename T>
void TrainingStep<T>::accumulate(bool first) {
  auto& params = model_.params();
  T* gradients = params.gradients().data();
  T* sum = accumulated_.data();
  for (const auto& [begin, end] : dense_ranges_)
    if (first)
      backend_.copy(end - begin, gradients + begin, sum + begin);
    else
      backend_.add(end - begin, gradients + begin, sum + begin, sum + begin);
  // Row-sparse tensors (host memory only): the rows this micro-batch wrote, and their union.
  for (std::size_t i = 0; i < union_rows_.size(); ++i) {
    const engine::RowSparse& sparse = params.row_sparse()[i];
    const auto width = static_cast<std::size_t>(sparse.row_size);
    for (const std::int32_t row : sparse.rows) {
      const std::size_t at = static_cast<std::size_t>(sparse.offset) + static_cast<std::size_t>(row) * width;
      for (std::size_t k = 0; k < width; ++k) sum[at + k] += gradients[at + k];
    }
    std::vector<std::int32_t> both;
    std::set_union(union_rows_[i].begin(), union_rows_[i].end(), sparse.rows.begin(), sparse.rows.end(),
                   std::back_inserter(both));
    union_rows_[i] = std::move(both);
  }
}

template <typename T>
void TrainingStep<T>::merge_accumulated() {
  auto& params = model_.params();
  T* gradients = params.gradients().data();
  T* sum = accumulated_.data();
  if (!setup_.reducer)
    for (const auto& [begin, end] : dense_ranges_)
      backend_.add(end - begin, gradients + begin, sum + begin, gradients + begin);
  for (std::size_t i = 0; i < union_rows_.size(); ++i) {
    engine::RowSparse& sparse = params.row_sparse()[i];
    const auto width = static_cast<std::size_t>(sparse.row_size);
    std::vector<std::int32_t>& rows = union_rows_[i];
    std::vector<std::int32_t> both;
    std::set_union(rows.begin(), rows.end(), sparse.rows.begin(), sparse.rows.end(), std::back_inserter(both));
    // The last micro-batch's gradient is 0 outside its own rows; the sum is 0 outside the union.
    for (const std::int32_t row : both) {
      const std::size_t at = static_cast<std::size_t>(sparse.offset) + static_cast<std::size_t>(row) * width;
      for (std::size_t k = 0; k < width; ++k) {
        gradients[at + k] += sum[at + k];
        sum[at + k] = 0;
      }
    }
    sparse.rows = std::move(both);
    rows.clear();
  }
}

template <typename T>
void TrainingStep<T>::compute_gradients(const StepInput& in, std::int64_t step) {
  if (setup_.hooks) setup_.hooks->before_step(step);
  const engine::Memory& memory = backend_.memory();
  const Index n = in.batch.n;
  const Index global_rows = in.global_rows > 0 ? in.global_rows : n;
  part_rows_ = setup_.micro_rows > 0 && setup_.micro_rows < n ? setup_.micro_rows : std::max<Index>(n, 1);
  parts_ = static_cast<std::size_t>(n > 0 ? (n + part_rows_ - 1) / part_rows_ : 1);
  if (parts_ > 1 && accumulated_.size() == 0)
    throw Error("training step: " + std::to_string(n) + " rows in micro-batches of " + std::to_string(part_rows_) +
                ", more than the " + std::to_string(setup_.max_rows) + " its buffers hold");
  ctx_.training = true;
  ctx_.step = step;
  const auto start = std::chrono::steady_clock::now();
  if (setup_.reducer) setup_.reducer->begin();
  if (n > 0) {
    std::function<void(Index)>* ready = ctx_.on_gradients_ready;
    for (std::size_t part = 0; part < parts_; ++part) {
      const bool last = part + 1 == parts_;
      const Index begin = static_cast<Index>(part) * part_rows_;
      // Only the last micro-batch's backward hands buckets to the reducer.
      ctx_.on_gradients_ready = last ? ready : nullptr;
      forward_backward(parts_ > 1 ? slice(in, begin, std::min(part_rows_, n - begin)) : in, global_rows, part);
      if (!last) accumulate(part == 0);
    }
    ctx_.on_gradients_ready = ready;
    if (parts_ > 1) merge_accumulated();
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
  for (std::size_t part = 0; part < parts_; ++part) {
    const double* stats = host_stats_.data() + stats_slot(part);
    r.loss_sum += stats[kLoss];
    r.correct += static_cast<std::int64_t>(stats[kCorrect]);
    if (r.bad_label_row < 0 && stats[kBadLabel] > 0)
      r.bad_label_row = static_cast<std::int64_t>(part) * part_rows_ + static_cast<std::int64_t>(stats[kBadLabel]) - 1;
  }
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
