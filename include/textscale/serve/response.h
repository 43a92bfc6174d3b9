// Answers of POST /v1/classify, shaped like `textscale predict --output-format jsonl` less its
// record and line: one prediction per text,
//   {"predicted": "Sports", "index": 1, "probabilities": {"World": 0.01, "Sports": 0.97, ...}}
// or, with top_k (1..classes), "top": [{"class": "Sports", "index": 1, "probability": 0.97}, ...] (most
// probable first, ties by lower index) instead of "probabilities". A request with "text" is
// answered with the prediction itself; one with "texts" with {"predictions": [...]}, in order.
// Probabilities are written with the fewest digits that read back as the same float.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace textscale::serve {

// One request's results: probabilities[texts, classes] and predicted[texts].
struct Predictions {
  const float* probabilities = nullptr;
  const std::int32_t* predicted = nullptr;
  std::size_t texts = 0;
};

[[nodiscard]] std::string classify_response(const std::vector<std::string>& class_names, const Predictions& predictions,
                                            bool single, std::int64_t top_k);

// {"error": message}, the body of every 4xx and 5xx answer.
[[nodiscard]] std::string error_body(std::string_view message);

}  // namespace textscale::serve
