// Label field -> 0-based class index.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "textscale/preprocess/options.h"
#include "textscale/preprocess/record.h"

namespace textscale::preprocess {

// Reads one class name per line (blank lines and surrounding whitespace ignored). Throws
// IoError/InputError naming the file.
[[nodiscard]] std::vector<std::string> read_class_names(const std::string& path);

class LabelMapper {
 public:
  // `names` is the class list: when not empty it bounds integer labels to its size (else to
  // `max_classes`), and it is the map for LabelKind::names.
  LabelMapper(LabelKind kind, const std::vector<std::string>& names, std::int64_t max_classes);

  struct Result {
    std::int32_t label = -1;  // 0-based, valid when ok
    bool ok = false;
    BadRowReason reason{};
    std::string detail;
  };
  [[nodiscard]] Result map(std::string_view field) const;

 private:
  LabelKind kind_;
  std::int64_t num_classes_ = 0;  // 0: no class list
  std::int64_t max_classes_;
  std::unordered_map<std::string, std::int32_t> by_name_;
};

}  // namespace textscale::preprocess
