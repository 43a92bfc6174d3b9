#include "textscale/dist/reducer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

namespace textscale::dist {

GradientReducer::GradientReducer(Communicator& comm, float* gradients, engine::Index count,
                                 engine::Index bucket_elements, std::vector<SparseRange> sparse, Wire wire)
    : comm_(comm), gradients_(gradients), wire_(wire), sparse_(std::move(sparse)) {
  // The dense ranges between the row-sparse ones, highest first, each cut into buckets from its end.
  std::vector<std::pair<engine::Index, engine::Index>> ranges;
  engine::Index begin = 0;
  for (const auto& s : sparse_) {
    if (s.offset > begin) ranges.emplace_back(begin, s.offset);
    begin = s.offset + s.row_count * s.row_size;
  }
  if (count > begin) ranges.emplace_back(begin, count);
  engine::Index dense = 0;
  for (const auto& [b, e] : ranges) dense += e - b;
  if (bucket_elements <= 0 || bucket_elements >= dense) bucket_elements = std::max<engine::Index>(dense, 1);
  for (auto range = ranges.rbegin(); range != ranges.rend(); ++range)
    for (engine::Index end = range->second; end > range->first; end -= bucket_elements)
      buckets_.push_back(Bucket{std::max(range->first, end - bucket_elements), end, {}, false, false});
}

void GradientReducer::begin() {
  next_ = 0;
  for (auto& bucket : buckets_) bucket.started = bucket.done = false;
}

void GradientReducer::start(std::size_t index) {
  Bucket& bucket = buckets_[index];
  if (on_start_) on_start_(index, gradients_ + bucket.begin, bucket.end - bucket.begin);
  bucket.handle =
      comm_.allreduce_async(gradients_ + bucket.begin, static_cast<std::size_t>(bucket.end - bucket.begin), wire_);
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

void GradientReducer::reduce_sparse() {
  sparse_elements_ = 0;
  for (std::size_t i = 0; i < sparse_.size(); ++i) {
    const SparseRange& s = sparse_[i];
    std::vector<std::int32_t>& rows = *s.rows;
    // The union of every rank's rows, sorted: the same list on every rank.
    all_rows_ = comm_.allgatherv(rows);
    std::sort(all_rows_.begin(), all_rows_.end());
    all_rows_.erase(std::unique(all_rows_.begin(), all_rows_.end()), all_rows_.end());
    const auto width = static_cast<std::size_t>(s.row_size);
    packed_.resize(all_rows_.size() * width);
    float* table = gradients_ + s.offset;
    // Rows this rank did not touch are 0 in its gradient: copying every row of the union packs them.
    for (std::size_t r = 0; r < all_rows_.size(); ++r)
      std::copy_n(table + static_cast<engine::Index>(all_rows_[r]) * s.row_size, width, packed_.data() + r * width);
    const auto count = static_cast<engine::Index>(packed_.size());
    if (on_start_) on_start_(buckets_.size() + i, packed_.data(), count);
    comm_.wait(comm_.allreduce_async(packed_.data(), packed_.size(), wire_));
    for (std::size_t r = 0; r < all_rows_.size(); ++r)
      std::copy_n(packed_.data() + r * width, width, table + static_cast<engine::Index>(all_rows_[r]) * s.row_size);
    rows = all_rows_;
    sparse_elements_ += count;
  }
}

void GradientReducer::finish() {
  const auto start_time = std::chrono::steady_clock::now();
  while (next_ < buckets_.size()) start(next_++);
  reduce_sparse();
  for (auto& bucket : buckets_)
    if (!bucket.done) {
      comm_.wait(bucket.handle);
      bucket.done = true;
    }
  wait_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
}

AllreduceCost measure_allreduce(Communicator& comm, float* scratch, engine::Index count, Wire wire) {
  const auto time = [&](engine::Index n) {
    double least = 0;
    for (int rep = 0; rep < 8; ++rep) {
      comm.barrier();
      const auto start = std::chrono::steady_clock::now();
      comm.wait(comm.allreduce_async(scratch, static_cast<std::size_t>(n), wire));
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (rep == 1 || (rep > 1 && seconds < least)) least = seconds;  // the first is a warm-up
    }
    return least;
  };
  // The ends of the range the bucket is chosen in; the fastest of 7 (what the link gives when
  // nothing else on the machine disturbs it), the slowest rank's.
  const engine::Index small = std::min<engine::Index>(count, 256 * 1024),
                      large = std::min<engine::Index>(count, 4 * 1024 * 1024);
  double measured[2] = {time(small), time(large)};
  comm.allreduce(measured, 2, ReduceOp::max);
  AllreduceCost cost;
  if (large > small) cost.seconds_per_element = (measured[1] - measured[0]) / static_cast<double>(large - small);
  cost.fixed_seconds = measured[0] - static_cast<double>(small) * cost.seconds_per_element;
  return cost;
}

engine::Index choose_bucket_elements(engine::Index count, const AllreduceCost& cost) {
  constexpr engine::Index least = 1024 * 1024 / 4, most = 64 * 1024 * 1024 / 4;
  double best = static_cast<double>(least);
  if (cost.seconds_per_element <= 0)
    best = static_cast<double>(most);  // no cost per element measured: as few buckets as allowed
  else if (cost.fixed_seconds > 0)
    best = std::sqrt(static_cast<double>(count) * cost.fixed_seconds / cost.seconds_per_element);
  // A power of two (of MiB): the same choice run after run unless the measurement moves by more
  // than a factor of 1.4.
  best = std::exp2(std::round(std::log2(std::clamp(best, static_cast<double>(least), static_cast<double>(most)))));
  return std::min(static_cast<engine::Index>(best), count);
}

}  // namespace textscale::dist
