// Dynamic batching: HTTP threads push requests (jobs); the inference thread takes them in batches.
//
// A batch is the oldest waiting jobs, in arrival order, whose texts add up to at most max_batch
// (a job with more texts than that is a batch of its own, classified in slices). The inference
// thread takes a batch as soon as it is full; otherwise it waits for more jobs until max_delay
// after the later of the first job's arrival and the call of next_batch (the model becoming
// free), but not at all once every open connection has a job waiting: no other client can add
// to the batch then (a single client is never delayed). Connections are counted by the HTTP
// thread pool (connection_opened / connection_closed).
//
// The queue holds at most max_queue jobs; push() refuses more (the caller answers 503). After
// close(), push() refuses every job and next_batch() hands out what is left, then nothing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "textscale/serve/request.h"

namespace textscale::serve {

using Clock = std::chrono::steady_clock;

// One request's texts on their way to the model, and its answer on the way back.
struct Job {
  std::vector<std::string> texts;
  bool single = false;  // {"text": ...}: errors name "text" rather than "texts[i]"
  Clock::time_point arrival = Clock::now();
  // Set by the inference thread before `done` is fulfilled: probabilities[texts, classes] and
  // predicted[texts], or `error` (status 0: none) for a text the encoder refused or a failure.
  std::vector<float> probabilities;
  std::vector<std::int32_t> predicted;
  RequestError error{0, {}};
  std::promise<void> done;
};

class BatchQueue {
 public:
  BatchQueue(std::int64_t max_batch, std::chrono::microseconds max_delay, std::int64_t max_queue);

  // Queues `job`; false (and the job untouched) when the queue is full or closed.
  [[nodiscard]] bool push(std::shared_ptr<Job> job);
  // The next batch (see above); empty once the queue is closed and drained.
  [[nodiscard]] std::vector<std::shared_ptr<Job>> next_batch();
  // Refuse new jobs; jobs already queued are still handed out.
  void close();

  void connection_opened();
  void connection_closed();

  [[nodiscard]] std::int64_t waiting() const;  // jobs queued, not yet taken
  [[nodiscard]] std::int64_t max_batch() const { return max_batch_; }

 private:
  // Jobs from the front that fit one batch, and whether no later job could join it.
  [[nodiscard]] std::size_t fitting(bool& full) const;

  const std::int64_t max_batch_;
  const std::chrono::microseconds max_delay_;
  const std::int64_t max_queue_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::shared_ptr<Job>> jobs_;
  std::int64_t connections_ = 0;
  bool closed_ = false;
};

}  // namespace textscale::serve
