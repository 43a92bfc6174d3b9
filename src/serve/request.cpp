#include "textscale/serve/request.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace textscale::serve {

bool is_json_content_type(std::string_view content_type) {
  const std::string_view media = content_type.substr(0, content_type.find(';'));
  std::string lowered;
  for (const char c : media)
    if (c != ' ' && c != '\t') lowered.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return lowered == "application/json";
}

namespace {

RequestError error(int status, std::string message) {
  return RequestError{status, std::move(message)};
}

// Reads "top_k" into `request`; an error message when it is not an integer in [1, classes].
std::string read_top_k(const nlohmann::json& object, std::int64_t classes, ClassifyRequest& request) {
  const auto found = object.find("top_k");
  if (found == object.end() || found->is_null()) return {};
  if (!found->is_number_integer()) return "\"top_k\" must be an integer";
  const auto k = found->get<std::int64_t>();
  if (k < 1 || k > classes)
    return "\"top_k\" must be between 1 and the number of classes (" + std::to_string(classes) + "), not " +
           std::to_string(k);
  request.top_k = k;
  return {};
}

}  // namespace

std::variant<ClassifyRequest, RequestError> parse_classify_request(std::string_view body, const RequestLimits& limits) {
  const nlohmann::json object = nlohmann::json::parse(body, nullptr, false);
  if (object.is_discarded()) return error(400, "the body is not valid JSON (UTF-8)");
  if (!object.is_object()) return error(400, "the body must be a JSON object with \"text\" or \"texts\"");
  const bool has_text = object.contains("text"), has_texts = object.contains("texts");
  if (has_text == has_texts) return error(400, "give exactly one of \"text\" (a string) and \"texts\" (a list)");

  ClassifyRequest request;
  if (std::string problem = read_top_k(object, limits.classes, request); !problem.empty())
    return error(400, std::move(problem));
  if (has_text) {
    const nlohmann::json& text = object["text"];
    if (!text.is_string()) return error(400, "\"text\" must be a string");
    request.single = true;
    request.texts.push_back(text.get<std::string>());
  } else {
    const nlohmann::json& texts = object["texts"];
    if (!texts.is_array()) return error(400, "\"texts\" must be a list of strings");
    if (texts.empty()) return error(422, "\"texts\" is empty");
    if (static_cast<std::int64_t>(texts.size()) > limits.max_texts)
      return error(413, "\"texts\" holds " + std::to_string(texts.size()) + " texts, more than the " +
                            std::to_string(limits.max_texts) + " a request may (--max-texts)");
    request.texts.reserve(texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) {
      if (!texts[i].is_string()) return error(400, "texts[" + std::to_string(i) + "] is not a string");
      request.texts.push_back(texts[i].get<std::string>());
    }
  }
  for (std::size_t i = 0; i < request.texts.size(); ++i)
    if (request.texts[i].size() > limits.max_text_bytes)
      return error(413, (request.single ? std::string("\"text\"") : "texts[" + std::to_string(i) + "]") + " is " +
                            std::to_string(request.texts[i].size()) + " bytes, more than the " +
                            std::to_string(limits.max_text_bytes) + " a text may (--max-text-bytes)");
  return request;
}

}  // namespace textscale::serve
