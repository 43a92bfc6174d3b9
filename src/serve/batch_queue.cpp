#include "textscale/serve/batch_queue.h"

#include <algorithm>

namespace textscale::serve {

BatchQueue::BatchQueue(std::int64_t max_batch, std::chrono::microseconds max_delay, std::int64_t max_queue)
    : max_batch_(max_batch), max_delay_(max_delay), max_queue_(max_queue) {}

bool BatchQueue::push(std::shared_ptr<Job> job) {
  {
    const std::lock_guard lock(mutex_);
    if (closed_ || static_cast<std::int64_t>(jobs_.size()) >= max_queue_) return false;
    jobs_.push_back(std::move(job));
  }
  changed_.notify_all();
  return true;
}

std::size_t BatchQueue::fitting(bool& full) const {
  full = false;
  std::int64_t texts = 0;
  std::size_t count = 0;
  for (const auto& job : jobs_) {
    const auto size = static_cast<std::int64_t>(job->texts.size());
    if (count > 0 && texts + size > max_batch_) {
      full = true;
      break;
    }
    texts += size;
    ++count;
    if (texts >= max_batch_) {
      full = true;
      break;
    }
  }
  return count;
}

std::vector<std::shared_ptr<Job>> BatchQueue::next_batch() {
  const Clock::time_point free = Clock::now();  // the model has finished its previous batch
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return !jobs_.empty() || closed_; });
  if (jobs_.empty()) return {};
  // Wait for more only while some open connection has no job queued yet. The delay counts from
  // the later of the first job's arrival and the model becoming free: the clients just answered
  // get their chance to join, instead of the jobs that queued behind the last batch leaving at
  // once as a small batch (which would make batches alternate between large and small).
  const auto ready = [&] {
    bool full = false;
    (void)fitting(full);
    return full || closed_ || static_cast<std::int64_t>(jobs_.size()) >= connections_;
  };
  changed_.wait_until(lock, std::max(jobs_.front()->arrival, free) + max_delay_, ready);
  bool full = false;
  const std::size_t count = fitting(full);
  std::vector<std::shared_ptr<Job>> batch(jobs_.begin(), jobs_.begin() + static_cast<std::ptrdiff_t>(count));
  jobs_.erase(jobs_.begin(), jobs_.begin() + static_cast<std::ptrdiff_t>(count));
  return batch;
}

void BatchQueue::close() {
  {
    const std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

void BatchQueue::connection_opened() {
  const std::lock_guard lock(mutex_);
  ++connections_;
}

void BatchQueue::connection_closed() {
  {
    const std::lock_guard lock(mutex_);
    --connections_;
  }
  changed_.notify_all();
}

std::int64_t BatchQueue::waiting() const {
  const std::lock_guard lock(mutex_);
  return static_cast<std::int64_t>(jobs_.size());
}

}  // namespace textscale::serve
