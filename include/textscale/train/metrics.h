// Classification metrics: loss, accuracy, per-class precision/recall/F1 and the confusion matrix.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace textscale::train {

class Metrics {
 public:
  explicit Metrics(std::int64_t classes) : classes_(classes), confusion_(static_cast<std::size_t>(classes * classes)) {}

  // One sample: its true label, the predicted class, and (optionally) its loss.
  void add(std::int32_t label, std::int32_t predicted, double loss = 0);
  // Adds another Metrics' counts (e.g. from another rank).
  void merge(const Metrics& other);
  // The counts as doubles (samples, loss sum, confusion matrix; exact below 2^53) to be summed
  // across ranks, and back.
  [[nodiscard]] std::vector<double> pack() const;
  void unpack(const std::vector<double>& packed);

  [[nodiscard]] std::int64_t samples() const { return samples_; }
  [[nodiscard]] double mean_loss() const { return samples_ ? loss_sum_ / static_cast<double>(samples_) : 0.0; }
  [[nodiscard]] double accuracy() const;
  [[nodiscard]] double precision(std::int64_t c) const;
  [[nodiscard]] double recall(std::int64_t c) const;
  [[nodiscard]] double f1(std::int64_t c) const;
  [[nodiscard]] double macro_f1() const;
  // confusion(label, predicted): samples of class `label` predicted as `predicted`.
  [[nodiscard]] std::int64_t confusion(std::int64_t label, std::int64_t predicted) const {
    return confusion_[static_cast<std::size_t>(label * classes_ + predicted)];
  }

  // JSON object {"loss", "accuracy", "macro_f1", "per_class": [...], "confusion": [[...]]}.
  [[nodiscard]] std::string json(const std::vector<std::string>& class_names) const;
  // A table for people: per-class precision/recall/F1 and the confusion matrix.
  [[nodiscard]] std::string table(const std::vector<std::string>& class_names) const;

 private:
  std::int64_t classes_;
  std::vector<std::int64_t> confusion_;
  std::int64_t samples_ = 0;
  double loss_sum_ = 0;
};

}  // namespace textscale::train
