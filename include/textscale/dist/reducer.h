// Data-parallel gradient averaging: the flat gradient buffer is all-reduced in fixed-order
// buckets, each started as soon as backward has written its last gradient, so that
// communication overlaps the rest of backward (PyTorch DDP's reducer, Horovod's tensor fusion).
//
// Buckets are contiguous ranges of the flat buffer taken from its end (the last layers'
// gradients are final first), `bucket_elements` long except the lowest one. Every rank runs the
// same layers in the same order, so every rank starts the same buckets in the same order. The
// reducer sums; the trainer scales each rank's loss gradient by 1/global batch, so the sum is
// the global batch mean. MPI's non-blocking collectives progress when MPI is entered, so each
// backward hook also tests the buckets in flight.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "textscale/dist/communicator.h"
#include "textscale/engine/dims.h"

namespace textscale::dist {

// A (row_count, row_size) tensor at `offset` in the gradient buffer whose rows outside `*rows`
// (sorted, distinct) are 0 (engine::RowSparse).
struct SparseRange {
  engine::Index offset = 0, row_count = 0, row_size = 0;
  std::vector<std::int32_t>* rows = nullptr;
};

class GradientReducer {
 public:
  // `bucket_elements` <= 0 or >= count: one bucket, started after backward (no overlap).
  // `sparse`: row-sparse ranges, in offset order, left out of the buckets.
  // `wire`: how the buckets travel (Wire::bf16: half the bytes, rounded).
  GradientReducer(Communicator& comm, float* gradients, engine::Index count, engine::Index bucket_elements,
                  std::vector<SparseRange> sparse = {}, Wire wire = Wire::fp32);

  // Called with each bucket just before it is sent: its index in start order (0 first, up to
  // buckets() - 1; the row-sparse ranges come last, their packed rows as data), its data and length. The trainer queues
  // a sum of squares of this rank's gradients there, so that a NaN or infinity is traced to the rank that produced it.
  void on_start(std::function<void(std::size_t, const float*, engine::Index)> fn) { on_start_ = std::move(fn); }
  // Before backward.
  void begin();
  // Backward hook: gradients at offsets >= `offset` are final.
  void ready_from(engine::Index offset);
  // After backward: starts what is left and waits for every bucket.
  void finish();

  [[nodiscard]] std::size_t buckets() const { return buckets_.size() + sparse_.size(); }
  // Of the last step: elements summed for the row-sparse ranges (their rows of the union).
  [[nodiscard]] engine::Index sparse_elements() const { return sparse_elements_; }
  // Of the last step: seconds blocked in finish() (communication not hidden behind backward).
  [[nodiscard]] double wait_seconds() const { return wait_seconds_; }

 private:
  struct Bucket {
    engine::Index begin = 0, end = 0;
    Handle handle;
    bool started = false, done = false;
  };
  void start(std::size_t index);
  void reduce_sparse();

  Communicator& comm_;
  float* gradients_;
  Wire wire_;
  std::vector<Bucket> buckets_;  // in start order: highest offsets first
  std::vector<SparseRange> sparse_;
  std::vector<float> packed_;  // a row-sparse range's rows of the union
  std::vector<std::int32_t> all_rows_;
  engine::Index sparse_elements_ = 0;
  std::size_t next_ = 0;  // first bucket not started
  double wait_seconds_ = 0;
  std::function<void(std::size_t, const float*, engine::Index)> on_start_;
};

// What an all-reduce of n elements costs on this communicator, the slowest rank's:
// fixed_seconds + n * seconds_per_element.
struct AllreduceCost {
  double fixed_seconds = 0, seconds_per_element = 0;
};

// Measures AllreduceCost with `wire` on every rank at once (a collective): the fastest of 7
// all-reduces of 1 MiB and of 16 MiB of floats of `scratch` (at most `count` elements; its values
// are summed over the ranks, so zeros stay zeros).
AllreduceCost measure_allreduce(Communicator& comm, float* scratch, engine::Index count, Wire wire);

// The bucket size, in elements, for a gradient of `count` elements: a step's all-reduce costs
// about (count / b) * fixed + count * per_element, and the last bucket, sent when backward ends,
// is exposed whole (fixed + b * per_element); their sum is least at b = sqrt(count * fixed /
// per_element), rounded to a power of two within [1, 64] MiB of floats (at most the whole
// gradient).
engine::Index choose_bucket_elements(engine::Index count, const AllreduceCost& cost);

}  // namespace textscale::dist
