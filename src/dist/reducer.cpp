#include "textscale/dist/reducer.h"

#include <chrono>

namespace textscale::dist {

GradientReducer::GradientReducer(Communicator& comm, float* gradients, engine::Index count,
                                 engine::Index bucket_elements)
    : comm_(comm), gradients_(gradients) {
  if (bucket_elements <= 0 || bucket_elements >= count) bucket_elements = count;
  for (engine::Index end = count; end > 0; end -= bucket_elements)
    buckets_.push_back(Bucket{std::max<engine::Index>(0, end - bucket_elements), end, {}, false, false});
}

void GradientReducer::begin() {
  next_ = 0;
  for (auto& bucket : buckets_) bucket.started = bucket.done = false;
}

void GradientReducer::start(std::size_t index) {
  Bucket& bucket = buckets_[index];
  if (on_start_) on_start_(index, gradients_ + bucket.begin, bucket.end - bucket.begin);
  bucket.handle = comm_.allreduce_async(gradients_ + bucket.begin, static_cast<std::size_t>(bucket.end - bucket.begin));
  bucket.started = true;
}

void GradientReducer::ready_from(engine::Index offset) {
  if (buckets_.size() < 2) return;  // a single bucket waits for the whole backward
  while (next_ < buckets_.size() && buckets_[next_].begin >= offset) start(next_++);
  // Drive the buckets in flight (MPI progresses non-blocking collectives inside MPI calls).
  for (std::size_t i = 0; i < next_; ++i)
    if (!buckets_[i].done) {
      buckets_[i].done = comm_.test(buckets_[i].handle);
      if (!buckets_[i].done) break;  // later buckets cannot have overtaken it
    }
}

void GradientReducer::finish() {
  const auto start_time = std::chrono::steady_clock::now();
  while (next_ < buckets_.size()) start(next_++);
  for (auto& bucket : buckets_)
    if (!bucket.done) {
      comm_.wait(bucket.handle);
      bucket.done = true;
    }
  wait_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
}

}  // namespace textscale::dist
