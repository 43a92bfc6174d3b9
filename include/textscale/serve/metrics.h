// What the server has done since it started, in Prometheus' text format (version 0.0.4), for
// GET /metrics:
//   textscale_http_requests_total{handler,code}      answers by route and HTTP status
//   textscale_request_duration_seconds               classify requests, body read to answer ready
//   textscale_batch_size                             texts per forward pass
//   textscale_batch_duration_seconds                 one forward pass
//   textscale_texts_total                            texts classified
//   textscale_queue_requests                         requests waiting for the model (gauge)
//   textscale_model_info{model,revision,checkpoint,classes,backend} 1
//   textscale_build_info{version,revision} 1
// Thread-safe: HTTP threads and the inference thread record into it at once.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace textscale::serve {

// Observations counted in buckets of upper bounds `bounds` (ascending; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends NAME_bucket{le=...} (cumulative), NAME_sum and NAME_count.
  void render(std::string& out, std::string_view name) const;

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // [bounds + 1], the last for +Inf; not cumulative
  double sum_ = 0.0;
};

// The labels of textscale_model_info.
struct ModelLabels {
  std::string model;       // the model's name, e.g. crepe-small
  std::string revision;    // the first 12 hex digits of the checkpoint file's SHA-256
  std::string checkpoint;  // its path as given
  std::int64_t classes = 0;
  std::string backend;
};

class ServeMetrics {
 public:
  explicit ServeMetrics(std::int64_t max_batch);
  // The labels of textscale_model_info, once the model is loaded.
  void set_model(ModelLabels model);

  void count_response(std::string_view handler, int status);
  void observe_request(double seconds);
  void observe_batch(std::int64_t texts, double seconds);

  [[nodiscard]] std::string render(std::int64_t queue_requests) const;

 private:
  ModelLabels model_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> responses_;
  Histogram request_seconds_, batch_size_, batch_seconds_;
  std::uint64_t texts_ = 0;
};

// `value` quoted for a label: backslash, double quote and newline escaped.
[[nodiscard]] std::string label_value(std::string_view value);

}  // namespace textscale::serve
