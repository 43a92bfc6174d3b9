#include "textscale/preprocess/labels.h"

#include <charconv>
#include <fstream>

#include "textscale/common/error.h"
#include "textscale/common/schema.h"

namespace textscale::preprocess {

namespace {
std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}
}  // namespace

std::vector<std::string> read_class_names(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(errno_message("cannot open classes file '" + path + "'", errno));
  std::vector<std::string> names;
  std::string line;
  for (bool first = true; std::getline(in, line); first = false) {
    // A byte-order mark (as some editors write UTF-8) is not part of the first name.
    if (first && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    const std::string_view name = trim(line);
    if (!name.empty()) names.emplace_back(name);
  }
  if (names.empty()) throw InputError("classes file '" + path + "' lists no class");
  for (std::size_t i = 0; i < names.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (names[i] == names[j]) throw InputError("classes file '" + path + "' lists '" + names[i] + "' twice");
  return names;
}

LabelMapper::LabelMapper(LabelKind kind, const std::vector<std::string>& names, std::int64_t max_classes)
    : kind_(kind), num_classes_(static_cast<std::int64_t>(names.size())), max_classes_(max_classes) {
  for (std::size_t i = 0; i < names.size(); ++i) by_name_.emplace(names[i], static_cast<std::int32_t>(i));
}

LabelMapper::Result LabelMapper::map(std::string_view field) const {
  Result result;
  const std::string_view value = trim(field);
  if (kind_ == LabelKind::names) {
    const auto found = by_name_.find(std::string(value));
    if (found == by_name_.end()) {
      result.reason = BadRowReason::unknown_label_name;
      result.detail = "class '" + std::string(value.substr(0, 80)) + "' is not in the class list";
      return result;
    }
    result.label = found->second;
    result.ok = true;
    return result;
  }
  std::int64_t number = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number);
  const bool all_digits = !value.empty() && end == value.data() + value.size();
  if (error == std::errc::result_out_of_range && all_digits) {
    result.reason = BadRowReason::label_out_of_range;
    result.detail = "label " + std::string(value.substr(0, 80)) + " is out of range";
    return result;
  }
  if (error != std::errc() || !all_digits) {
    result.reason = BadRowReason::label_not_integer;
    result.detail = "label '" + std::string(value.substr(0, 80)) + "' is not an integer";
    return result;
  }
  const std::int64_t base = kind_ == LabelKind::index1 ? 1 : 0;
  const std::int64_t index = number - base;
  // Without a class list the number of classes is the largest label + 1: bounded, so that one
  // stray number cannot make the writer count (and store) millions of empty classes.
  const std::int64_t bound = num_classes_ > 0 ? num_classes_ : max_classes_;
  if (index < 0 || index >= bound) {
    result.reason = BadRowReason::label_out_of_range;
    result.detail =
        "label " + std::to_string(number) + " is outside " + std::to_string(base) + ".." +
        std::to_string(bound - 1 + base) +
        (num_classes_ > 0 ? "" : " (no class list: --classes FILE names them, --max-classes raises the bound)");
    return result;
  }
  result.label = static_cast<std::int32_t>(index);
  result.ok = true;
  return result;
}

}  // namespace textscale::preprocess
