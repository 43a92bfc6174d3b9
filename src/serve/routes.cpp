#include "routes.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>

#include "textscale/serve/page.h"
#include "textscale/serve/request.h"
#include "textscale/serve/response.h"

namespace textscale::serve {

namespace {

constexpr const char* kJson = "application/json";

// The route a path is counted under: the four routes, or "other" (so that a client cannot grow
// the metrics by asking for random paths).
std::string route_label(const std::string& path) {
  for (const char* route : {"/", "/healthz", "/metrics", "/v1/classify"})
    if (path == route) return route;
  return "other";
}

// `close`: the body was not read to its end, so the connection cannot carry another request.
void reply_error(httplib::Response& response, int status, const std::string& message, bool close = false) {
  response.status = status;
  response.set_content(error_body(message), kJson);
  if (close) response.set_header("Connection", "close");
}

const char* status_text(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 404:
      return "not found";
    case 405:
      return "method not allowed";
    case 413:
      return "request too large";
    case 414:
      return "URI too long";
    case 415:
      return "unsupported media type";
    case 416:
      return "range not satisfiable";
    case 503:
      return "service unavailable";
    default:
      return status >= 500 ? "server error" : "client error";
  }
}

// Reads the body into `body`, at most max_body bytes (after any Content-Encoding); false when
// it is longer (then only part of it was read) or could not be read.
bool read_body(const httplib::ContentReader& reader, std::size_t max_body, std::string& body, bool& too_large) {
  too_large = false;
  const bool read = reader([&](const char* data, std::size_t size) {
    if (body.size() + size > max_body) {
      too_large = true;
      return false;
    }
    body.append(data, size);
    return true;
  });
  return read && !too_large;
}

void classify(const Service& service, const httplib::Request& request, httplib::Response& response,
              const httplib::ContentReader& reader) {
  if (!is_json_content_type(request.get_header_value("Content-Type")))
    return reply_error(response, 415, "send the texts as JSON, with Content-Type: application/json", true);
  std::string body;
  bool too_large = false;
  if (!read_body(reader, service.http->max_body, body, too_large)) {
    if (too_large || response.status == 413)
      return reply_error(response, 413,
                         "the body is longer than " + std::to_string(service.http->max_body) + " bytes (--max-body)",
                         true);
    return reply_error(response, 400, "the body could not be read", true);
  }
  const auto start = Clock::now();
  const RequestLimits limits{service.http->max_texts, service.http->max_text_bytes,
                             static_cast<std::int64_t>(service.class_names.size())};
  auto parsed = parse_classify_request(body, limits);
  if (const auto* error = std::get_if<RequestError>(&parsed))
    return reply_error(response, error->status, error->message);
  ClassifyRequest& classify_request = std::get<ClassifyRequest>(parsed);

  const auto job = std::make_shared<Job>();
  job->texts = std::move(classify_request.texts);
  job->single = classify_request.single;
  std::future<void> done = job->done.get_future();
  if (!service.queue->push(job)) {
    response.set_header("Retry-After", "1");
    return reply_error(response, 503, "the server is busy: its queue of requests is full (--max-queue); retry later");
  }
  done.wait();
  if (job->error.status != 0) return reply_error(response, job->error.status, job->error.message);
  const Predictions predictions{job->probabilities.data(), job->predicted.data(), job->texts.size()};
  response.set_content(classify_response(service.class_names, predictions, job->single, classify_request.top_k), kJson);
  service.metrics->observe_request(std::chrono::duration<double>(Clock::now() - start).count());
}

std::string health(const Service& service) {
  nlohmann::ordered_json body;
  body["status"] = "ok";
  body["model"] = service.model.model;
  body["revision"] = service.model.revision;
  body["classes"] = service.class_names;
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void log_access(const httplib::Request& request, const httplib::Response& response) {
  std::fprintf(stderr, "%s:%d \"%s %s %s\" %d %zu\n", request.remote_addr.c_str(), request.remote_port,
               request.method.c_str(), request.path.c_str(), request.version.c_str(), response.status,
               response.body.size());
}

}  // namespace

void add_routes(httplib::Server& server, const Service& service) {
  server.Get("/", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(kPageHtml.data(), kPageHtml.size(), "text/html; charset=utf-8");
  });
  server.Get("/healthz", [&service](const httplib::Request&, httplib::Response& response) {
    response.set_content(health(service), kJson);
  });
  server.Get("/metrics", [&service](const httplib::Request&, httplib::Response& response) {
    response.set_content(service.metrics->render(service.queue->waiting()), "text/plain; version=0.0.4");
  });
  server.Post("/v1/classify",
              [&service](const httplib::Request& request, httplib::Response& response,
                         const httplib::ContentReader& reader) { classify(service, request, response, reader); });
  server.Get("/v1/classify", [](const httplib::Request&, httplib::Response& response) {
    response.set_header("Allow", "POST");
    reply_error(response, 405, "POST the texts to /v1/classify as JSON: {\"text\": \"...\"}");
  });
  const httplib::Server::HandlerWithResponse json_errors = [](const httplib::Request& request,
                                                              httplib::Response& response) {
    if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const std::string what = status_text(response.status);
    reply_error(response, response.status, response.status == 404 ? what + ": " + request.path : what);
    return httplib::Server::HandlerResponse::Handled;
  };
  server.set_error_handler(json_errors);
  server.set_logger([&service](const httplib::Request& request, const httplib::Response& response) {
    service.metrics->count_response(route_label(request.path), response.status);
    if (service.http->access_log) log_access(request, response);
  });
}

}  // namespace textscale::serve
