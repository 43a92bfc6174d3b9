// POST /v1/classify bodies: {"text": "..."} or {"texts": ["...", ...]}, with an optional
// "top_k". Parsing never throws: a body that cannot be served comes back as a RequestError with
// the HTTP status to answer and a message for the client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace textscale::serve {

struct ClassifyRequest {
  std::vector<std::string> texts;
  bool single = false;     // {"text": ...}: answered with one prediction rather than a list
  std::int64_t top_k = 0;  // 0: every class's probability; else the k most probable classes
};

struct RequestError {
  int status = 400;
  std::string message;
};

struct RequestLimits {
  std::int64_t max_texts = 64;
  std::size_t max_text_bytes = 64u << 10;
  std::int64_t classes = 0;  // top_k may not exceed it
};

// True for "application/json" with any parameters ("; charset=utf-8"), in any letter case.
[[nodiscard]] bool is_json_content_type(std::string_view content_type);

// The request in `body`, or why it cannot be served:
//   400  not JSON, not an object, neither "text" (a string) nor "texts" (an array of strings),
//        both, or a "top_k" that is not an integer in [1, classes]
//   413  more than max_texts texts, or a text longer than max_text_bytes (the message names its
//        index in "texts")
//   422  an empty "texts" list
// Texts that the model's encoder refuses (blank, invalid UTF-8) are found later, by the encoder.
[[nodiscard]] std::variant<ClassifyRequest, RequestError> parse_classify_request(std::string_view body,
                                                                                 const RequestLimits& limits);

}  // namespace textscale::serve
