#include "textscale/train/metrics.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

namespace textscale::train {

void Metrics::add(std::int32_t label, std::int32_t predicted, double loss) {
  confusion_[static_cast<std::size_t>(label * classes_ + predicted)] += 1;
  samples_ += 1;
  loss_sum_ += loss;
}

void Metrics::merge(const Metrics& other) {
  for (std::size_t i = 0; i < confusion_.size(); ++i) confusion_[i] += other.confusion_[i];
  samples_ += other.samples_;
  loss_sum_ += other.loss_sum_;
}

std::vector<double> Metrics::pack() const {
  std::vector<double> packed{static_cast<double>(samples_), loss_sum_};
  for (auto count : confusion_) packed.push_back(static_cast<double>(count));
  return packed;
}

void Metrics::unpack(const std::vector<double>& packed) {
  samples_ = static_cast<std::int64_t>(packed.at(0));
  loss_sum_ = packed.at(1);
  for (std::size_t i = 0; i < confusion_.size(); ++i) confusion_[i] = static_cast<std::int64_t>(packed.at(i + 2));
}

double Metrics::accuracy() const {
  std::int64_t correct = 0;
  for (std::int64_t c = 0; c < classes_; ++c) correct += confusion(c, c);
  return samples_ ? static_cast<double>(correct) / static_cast<double>(samples_) : 0.0;
}

double Metrics::precision(std::int64_t c) const {
  std::int64_t predicted = 0;
  for (std::int64_t l = 0; l < classes_; ++l) predicted += confusion(l, c);
  return predicted ? static_cast<double>(confusion(c, c)) / static_cast<double>(predicted) : 0.0;
}

double Metrics::recall(std::int64_t c) const {
  std::int64_t actual = 0;
  for (std::int64_t p = 0; p < classes_; ++p) actual += confusion(c, p);
  return actual ? static_cast<double>(confusion(c, c)) / static_cast<double>(actual) : 0.0;
}

double Metrics::f1(std::int64_t c) const {
  const double p = precision(c), r = recall(c);
  return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

double Metrics::macro_f1() const {
  double sum = 0;
  for (std::int64_t c = 0; c < classes_; ++c) sum += f1(c);
  return classes_ ? sum / static_cast<double>(classes_) : 0.0;
}

namespace {
std::string class_name(const std::vector<std::string>& names, std::int64_t c) {
  return c < static_cast<std::int64_t>(names.size()) ? names[static_cast<std::size_t>(c)] : std::to_string(c);
}
}  // namespace

std::string Metrics::json(const std::vector<std::string>& names) const {
  nlohmann::json j;
  j["samples"] = samples_;
  j["loss"] = mean_loss();
  j["accuracy"] = accuracy();
  j["macro_f1"] = macro_f1();
  j["per_class"] = nlohmann::json::array();
  for (std::int64_t c = 0; c < classes_; ++c)
    j["per_class"].push_back(
        {{"class", class_name(names, c)}, {"precision", precision(c)}, {"recall", recall(c)}, {"f1", f1(c)}});
  j["confusion"] = nlohmann::json::array();
  for (std::int64_t l = 0; l < classes_; ++l) {
    nlohmann::json row = nlohmann::json::array();
    for (std::int64_t p = 0; p < classes_; ++p) row.push_back(confusion(l, p));
    j["confusion"].push_back(row);
  }
  return j.dump();
}

std::string Metrics::table(const std::vector<std::string>& names) const {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line, "  %-16s %9s %9s %9s   confusion (rows: true class)\n", "class", "precision",
                "recall", "F1");
  out << line;
  for (std::int64_t c = 0; c < classes_; ++c) {
    std::snprintf(line, sizeof line, "  %-16.16s %9.4f %9.4f %9.4f  ", class_name(names, c).c_str(), precision(c),
                  recall(c), f1(c));
    out << line;
    for (std::int64_t p = 0; p < classes_; ++p) {
      std::snprintf(line, sizeof line, " %7lld", static_cast<long long>(confusion(c, p)));
      out << line;
    }
    out << "\n";
  }
  std::snprintf(line, sizeof line, "  accuracy %.4f, macro F1 %.4f, loss %.4f over %lld samples", accuracy(),
                macro_f1(), mean_loss(), static_cast<long long>(samples_));
  out << line;
  return out.str();
}

}  // namespace textscale::train
