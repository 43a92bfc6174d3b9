#include "textscale/predict/prediction_writer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <numeric>

namespace textscale::predict {

std::string csv_field(std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(field);
  std::string quoted = "\"";
  for (const char c : field) {
    if (c == '"') quoted.push_back('"');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  return quoted;
}

namespace {

void append_number(std::string& out, float value) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, value).ptr;
  out.append(text, end);
}

void append_integer(std::string& out, std::int64_t value) {
  char text[24];
  const auto end = std::to_chars(text, text + sizeof text, value).ptr;
  out.append(text, end);
}

std::string json_string(std::string_view text) {
  return nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

PredictionWriter::PredictionWriter(OutputFormat format, std::vector<std::string> class_names, std::int64_t top_k,
                                   bool with_id, bool with_label)
    : format_(format),
      names_(std::move(class_names)),
      top_k_(top_k <= 0 || top_k >= static_cast<std::int64_t>(names_.size()) ? 0 : top_k),
      with_id_(with_id),
      with_label_(with_label),
      order_(names_.size()) {
  for (const auto& name : names_) {
    csv_names_.push_back(csv_field(name));
    json_names_.push_back(json_string(name));
  }
}

std::string PredictionWriter::header() const {
  if (format_ != OutputFormat::csv) return {};
  std::string line = "record,line";
  if (with_id_) line += ",id";
  if (with_label_) line += ",label";
  line += ",predicted,index";
  if (top_k_ == 0) {
    for (const auto& name : names_) line += "," + csv_field("prob_" + name);
  } else {
    for (std::int64_t i = 1; i <= top_k_; ++i) {
      const std::string n = std::to_string(i);
      line += ",top" + n + "_class,top" + n + "_index,top" + n + "_prob";
    }
  }
  return line + "\n";
}

void PredictionWriter::append(const Prediction& prediction, std::string& out) {
  if (top_k_ > 0) {
    // The k most probable classes, ties by lower index.
    std::iota(order_.begin(), order_.end(), 0);
    std::partial_sort(order_.begin(), order_.begin() + top_k_, order_.end(), [&](std::int32_t a, std::int32_t b) {
      const float pa = prediction.probabilities[a], pb = prediction.probabilities[b];
      return pa > pb || (pa == pb && a < b);
    });
  }
  if (format_ == OutputFormat::csv)
    append_csv(prediction, out);
  else
    append_json(prediction, out);
}

void PredictionWriter::append_csv(const Prediction& p, std::string& out) {
  append_integer(out, p.record);
  out.push_back(',');
  append_integer(out, p.line);
  if (with_id_) out += "," + csv_field(p.id);
  if (with_label_) {
    out.push_back(',');
    if (p.label >= 0) out += csv_names_[static_cast<std::size_t>(p.label)];
  }
  out.push_back(',');
  out += csv_names_[static_cast<std::size_t>(p.predicted)];
  out.push_back(',');
  append_integer(out, p.predicted);
  if (top_k_ == 0) {
    for (std::size_t c = 0; c < names_.size(); ++c) {
      out.push_back(',');
      append_number(out, p.probabilities[c]);
    }
  } else {
    for (std::int64_t i = 0; i < top_k_; ++i) {
      const auto c = static_cast<std::size_t>(order_[static_cast<std::size_t>(i)]);
      out += "," + csv_names_[c] + ",";
      append_integer(out, static_cast<std::int64_t>(c));
      out.push_back(',');
      append_number(out, p.probabilities[c]);
    }
  }
  out.push_back('\n');
}

void PredictionWriter::append_json(const Prediction& p, std::string& out) {
  out += "{\"record\":";
  append_integer(out, p.record);
  out += ",\"line\":";
  append_integer(out, p.line);
  if (with_id_) out += ",\"id\":" + json_string(p.id);
  if (with_label_) out += ",\"label\":" + (p.label >= 0 ? json_names_[static_cast<std::size_t>(p.label)] : "null");
  out += ",\"predicted\":" + json_names_[static_cast<std::size_t>(p.predicted)] + ",\"index\":";
  append_integer(out, p.predicted);
  if (top_k_ == 0) {
    out += ",\"probabilities\":{";
    for (std::size_t c = 0; c < names_.size(); ++c) {
      if (c) out.push_back(',');
      out += json_names_[c] + ":";
      append_number(out, p.probabilities[c]);
    }
    out += "}";
  } else {
    out += ",\"top\":[";
    for (std::int64_t i = 0; i < top_k_; ++i) {
      const auto c = static_cast<std::size_t>(order_[static_cast<std::size_t>(i)]);
      out += std::string(i ? "," : "") + "{\"class\":" + json_names_[c] + ",\"index\":";
      append_integer(out, static_cast<std::int64_t>(c));
      out += ",\"probability\":";
      append_number(out, p.probabilities[c]);
      out += "}";
    }
    out += "]";
  }
  out += "}\n";
}

}  // namespace textscale::predict
