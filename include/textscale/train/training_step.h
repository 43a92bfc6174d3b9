// One training step of a model on one rank: the object `train`, `bench`, `evaluate` and the tests
// share. compute_gradients queues forward, the loss, backward (handing each finished gradient
// bucket to the reducer, when there is one) and the average of the batch-norm running statistics
// over ranks; queue_update queues the optimizer's step; results() waits once for the backend and
// returns what the step produced. Nothing in between waits for a GPU, so a step is queued whole
// and its results come back in one copy at its end. infer() is the inference forward pass.
//
// The loss gradient is scaled to this rank's share of the global batch's mean: summed over the
// ranks (the reducer) it is the mean over the global batch, so N ranks take one process's step.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "textscale/dist/communicator.h"
#include "textscale/dist/reducer.h"
#include "textscale/engine/model.h"
#include "textscale/train/optimizer.h"

namespace textscale::train {

// A batch of this rank's rows.
struct StepInput {
  engine::InputBatch batch;              // this rank's rows of ids (batch.n rows; 0: none this step)
  const std::int32_t* labels = nullptr;  // [batch.n] class indices (may be null for infer)
  engine::Index global_rows = 0;         // the global batch's rows over all ranks (0: batch.n)
  std::int64_t sample_offset = 0;        // index of the first row in the global batch
  bool in_backend_memory = false;        // the batch's arrays and labels already live in the backend's memory
};

// What a step produced, on the host.
struct StepResults {
  double loss_sum = 0;              // sum of this rank's rows' losses
  std::int64_t correct = 0;         // this rank's rows classified correctly
  std::int64_t bad_label_row = -1;  // this rank's first row whose label is outside [0, classes)
  double gradient_sum_squares = 0;  // of the reduced gradient, the same on every rank
  bool skipped = false;             // that sum is not finite: the optimizer changed nothing
  bool local_nonfinite = false;     // this rank's own gradient (before reduction) was not finite
  double compute_seconds = 0;       // host time of this rank's forward and backward
  double reduce_wait_seconds = 0;   // time spent waiting for the gradient all-reduce
};

// Test hooks (failure injection), called at fixed points of a step; the default does nothing.
class StepHooks {
 public:
  virtual ~StepHooks() = default;
  // Before anything of step `step` (0-based global step) is queued.
  virtual void before_step(std::int64_t /*step*/) {}
  // After the loss: `stats` (loss, correct, bad label) and `diff_logits` [rows, classes] live in
  // the backend's memory.
  virtual void after_loss(std::int64_t /*step*/, const engine::Memory& /*memory*/, double* /*stats*/,
                          float* /*diff_logits*/, engine::Index /*count*/) {}
  // After backward, inside the compute time.
  virtual void after_backward(std::int64_t /*step*/, engine::Index /*rows*/) {}
};

struct StepSetup {
  std::uint64_t seed = 1;      // dropout masks: (seed, step, sample)
  engine::Index max_rows = 0;  // the most rows a step takes on this rank (buffers are sized for it)
  // Data parallelism (all null: one process). `reducer` sums the gradient buckets as backward
  // finishes them; `stats_comm` averages the running statistics (the gradients' communicator);
  // `allreduce_sum` serves synchronised batch normalisation.
  dist::GradientReducer* reducer = nullptr;
  dist::Communicator* stats_comm = nullptr;
  std::function<void(double*, engine::Index)>* allreduce_sum = nullptr;
  // Gradient accumulation (--accumulate): a step's rows go through forward and backward in
  // micro-batches of at most `micro_rows` rows whose gradients are summed before the reduction and
  // the update, so a global batch needs the memory of one micro-batch (0: the whole batch at once).
  // The summed gradient is the batch's up to the order of additions; dropout masks are the whole
  // batch's (keyed by each row's place in the global batch); batch normalisation sees each
  // micro-batch's statistics, as in PyTorch.
  engine::Index micro_rows = 0;
  // Wait for the device before the compute time is taken (--balance on a GPU).
  bool time_compute_exactly = false;
  StepHooks* hooks = nullptr;
};

// T: float (training) or double (the reference backend's gradient checks and tests; no data
// parallelism and no hooks there).
template <typename T>
class TrainingStep {
 public:
  // `optimizer` may be null for a model that only infers (evaluate).
  TrainingStep(engine::Model<T>& model, engine::Backend<T>& backend, Optimizer<T>* optimizer, const StepSetup& setup);

  // Queues forward, loss and backward of global step `step` on `in`, the gradient reduction and
  // the running statistics' average. A rank with no rows contributes zero gradients.
  void compute_gradients(const StepInput& in, std::int64_t step);
  // Queues the optimizer's step with learning rate `lr` (clipped and skipped on the device).
  void queue_update(double lr);
  // Waits for the step and returns its results; a skipped step is taken back from the optimizer's
  // step count.
  StepResults results();
  // compute_gradients, queue_update, results.
  StepResults run(const StepInput& in, std::int64_t step, double lr);

  // Inference logits [rows, classes] of `in`, in the backend's memory.
  const T* infer(const StepInput& in);

  // Times each layer into `profile` (null: none), training and inference alike.
  void set_profile(engine::Profile* profile) { ctx_.profile = profile; }

  [[nodiscard]] engine::Model<T>& model() { return model_; }
  [[nodiscard]] engine::Backend<T>& backend() { return backend_; }

 private:
  // `in`'s batch and labels in the backend's memory (copied through this step's buffers if needed).
  std::pair<engine::InputBatch, const std::int32_t*> stage(const StepInput& in);
  // Forward, loss (into stats slot `slot`) and backward of `in`.
  void forward_backward(const StepInput& in, engine::Index global_rows, std::size_t slot);
  // Accumulation: adds this micro-batch's gradient to accumulated_ (copies it for the first).
  void accumulate(bool first);
  // Accumulation, after the last micro-batch's backward: its row-sparse gradients become the sums
  // over every micro-batch (rows: their union); without a reducer the dense ones too (the
  // reducer adds the dense ones bucket by bucket, just before sending each).
  void merge_accumulated();
  // Loss, correct and bad-label slot `slot` in stats_ (0: the first micro-batch's).
  [[nodiscard]] std::size_t stats_slot(std::size_t slot) const;

  engine::Model<T>& model_;
  engine::Backend<T>& backend_;
  Optimizer<T>* optimizer_;
  StepSetup setup_;
  engine::Context<T> ctx_;
  std::function<void(engine::Index)> gradients_ready_;
  // Staging in the backend's memory: ids (bytes), per-row lengths, per-sentence lengths, labels.
  engine::Buffer<std::uint8_t> ids_;
  engine::Buffer<std::int32_t> lengths_, sentence_lengths_, labels_;
  engine::Buffer<T> diff_;
  // In the backend's memory: loss, correct, bad label (Backend::softmax_cross_entropy_stats); the
  // reduced gradient's sum of squares (Optimizer::queue_step); each bucket's sum of squares as
  // this rank sent it. Read back by results().
  engine::Buffer<double> stats_;
  std::vector<double> host_stats_;
  double compute_seconds_ = 0;
  // Accumulation: the micro-batches of the last step, their rows, the gradient's dense ranges
  // ([begin, end) between the row-sparse tensors), the sum so far (its row-sparse tensors are 0
  // outside the rows listed in union_rows_, one list per tensor).
  std::size_t parts_ = 1;
  engine::Index part_rows_ = 0;
  std::vector<std::pair<engine::Index, engine::Index>> dense_ranges_;
  engine::Buffer<T> accumulated_;
  std::vector<std::vector<std::int32_t>> union_rows_;
};

extern template class TrainingStep<float>;
extern template class TrainingStep<double>;

}  // namespace textscale::train
