#include "textscale/serve/metrics.h"

#include <algorithm>
#include <charconv>

#include "textscale/common/build_info.h"

namespace textscale::serve {

namespace {

std::string number(double value) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, value).ptr;
  return std::string(text, end);
}

// 1, 2, 4, ... up to max_batch, which is always the last bound.
std::vector<double> batch_bounds(std::int64_t max_batch) {
  std::vector<double> bounds;
  for (std::int64_t b = 1; b < max_batch; b *= 2) bounds.push_back(static_cast<double>(b));
  bounds.push_back(static_cast<double>(max_batch));
  return bounds;
}

const std::vector<double> kSecondsBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

}  // namespace

std::string label_value(std::string_view value) {
  std::string quoted = "\"";
  for (const char c : value) {
    if (c == '\\' || c == '"') quoted.push_back('\\');
    if (c == '\n') {
      quoted += "\\n";
      continue;
    }
    quoted.push_back(c);
  }
  return quoted + "\"";
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[static_cast<std::size_t>(bucket)];
  sum_ += value;
}

void Histogram::render(std::string& out, std::string_view name) const {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    out.append(name).append("_bucket{le=\"").append(le).append("\"} ").append(std::to_string(cumulative) + "\n");
  }
  out.append(name).append("_sum ").append(number(sum_) + "\n");
  out.append(name).append("_count ").append(std::to_string(cumulative) + "\n");
}

ServeMetrics::ServeMetrics(std::int64_t max_batch)
    : request_seconds_(kSecondsBounds), batch_size_(batch_bounds(max_batch)), batch_seconds_(kSecondsBounds) {}

void ServeMetrics::set_model(ModelLabels model) {
  const std::lock_guard lock(mutex_);
  model_ = std::move(model);
}

void ServeMetrics::count_response(std::string_view handler, int status) {
  const std::lock_guard lock(mutex_);
  ++responses_[{std::string(handler), status}];
}

void ServeMetrics::observe_request(double seconds) {
  const std::lock_guard lock(mutex_);
  request_seconds_.observe(seconds);
}

void ServeMetrics::observe_batch(std::int64_t texts, double seconds) {
  const std::lock_guard lock(mutex_);
  batch_size_.observe(static_cast<double>(texts));
  batch_seconds_.observe(seconds);
  texts_ += static_cast<std::uint64_t>(texts);
}

std::string ServeMetrics::render(std::int64_t queue_requests) const {
  const std::lock_guard lock(mutex_);
  std::string out;
  header(out, "textscale_http_requests_total", "counter", "HTTP requests answered, by route and status code.");
  for (const auto& [key, count] : responses_)
    out += "textscale_http_requests_total{handler=" + label_value(key.first) + ",code=\"" + std::to_string(key.second) +
           "\"} " + std::to_string(count) + "\n";
  header(out, "textscale_request_duration_seconds", "histogram",
         "Classify requests: from the body read to the answer ready, queueing included.");
  request_seconds_.render(out, "textscale_request_duration_seconds");
  header(out, "textscale_batch_size", "histogram", "Texts per forward pass of the model.");
  batch_size_.render(out, "textscale_batch_size");
  header(out, "textscale_batch_duration_seconds", "histogram", "One forward pass of the model.");
  batch_seconds_.render(out, "textscale_batch_duration_seconds");
  header(out, "textscale_texts_total", "counter", "Texts classified.");
  out += "textscale_texts_total " + std::to_string(texts_) + "\n";
  header(out, "textscale_queue_requests", "gauge", "Requests waiting for the model.");
  out += "textscale_queue_requests " + std::to_string(queue_requests) + "\n";
  header(out, "textscale_model_info", "gauge", "The model served: name, checkpoint and its SHA-256 prefix.");
  out += "textscale_model_info{model=" + label_value(model_.model) + ",revision=" + label_value(model_.revision) +
         ",checkpoint=" + label_value(model_.checkpoint) + ",classes=\"" + std::to_string(model_.classes) +
         "\",backend=" + label_value(model_.backend) + "} 1\n";
  const BuildInfo build = build_info();
  header(out, "textscale_build_info", "gauge", "The textscale binary serving.");
  out += "textscale_build_info{version=" + label_value(build.version) + ",revision=" + label_value(build.git_revision) +
         "} 1\n";
  return out;
}

}  // namespace textscale::serve
