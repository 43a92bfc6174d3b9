#include "textscale/serve/response.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <numeric>

namespace textscale::serve {

namespace {

using Json = nlohmann::ordered_json;

// The double nearest to the float's shortest decimal form, which nlohmann then writes as that
// form: 0.01f is written "0.01", not "0.009999999776482582".
double shortest(float value) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, value).ptr;
  double parsed = 0.0;
  std::from_chars(text, end, parsed);
  return parsed;
}

Json prediction(const std::vector<std::string>& names, const float* p, std::int32_t predicted, std::int64_t top_k,
                std::vector<std::int32_t>& order) {
  Json object;
  object["predicted"] = names[static_cast<std::size_t>(predicted)];
  object["index"] = predicted;
  if (top_k == 0) {
    Json probabilities = Json::object();
    for (std::size_t c = 0; c < names.size(); ++c) probabilities[names[c]] = shortest(p[c]);
    object["probabilities"] = std::move(probabilities);
    return object;
  }
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                    [&](std::int32_t a, std::int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  Json top = Json::array();
  for (std::int64_t i = 0; i < top_k; ++i) {
    const std::int32_t c = order[static_cast<std::size_t>(i)];
    top.push_back(Json{{"class", names[static_cast<std::size_t>(c)]}, {"index", c}, {"probability", shortest(p[c])}});
  }
  object["top"] = std::move(top);
  return object;
}

std::string dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::string classify_response(const std::vector<std::string>& class_names, const Predictions& predictions, bool single,
                              std::int64_t top_k) {
  const std::size_t classes = class_names.size();
  std::vector<std::int32_t> order(classes);
  if (single) return dump(prediction(class_names, predictions.probabilities, predictions.predicted[0], top_k, order));
  Json list = Json::array();
  for (std::size_t i = 0; i < predictions.texts; ++i)
    list.push_back(
        prediction(class_names, predictions.probabilities + i * classes, predictions.predicted[i], top_k, order));
  Json body;
  body["predictions"] = std::move(list);
  return dump(body);
}

std::string error_body(std::string_view message) {
  Json body;
  body["error"] = std::string(message);
  return dump(body);
}

}  // namespace textscale::serve
