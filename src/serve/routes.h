// The routes of `textscale serve` on an httplib::Server (docs/serve.md):
//   GET  /             the page (page.h)
//   GET  /healthz      {"status": "ok", "model", "revision", "classes": [...]}
//   GET  /metrics      metrics.h, Prometheus text
//   POST /v1/classify  request.h -> the batch queue -> response.h
// plus the error handler that gives every 4xx and 5xx answer a JSON body {"error": ...}, and the
// logger that counts every answer by route and status (and writes an access log line to stderr
// when asked). Private to src/serve: only the server includes httplib.
#pragma once

#include <httplib.h>

#include <string>
#include <vector>

#include "textscale/serve/batch_queue.h"
#include "textscale/serve/metrics.h"
#include "textscale/serve/serve_options.h"

namespace textscale::serve {

// What the handlers share; every member outlives the server.
struct Service {
  const HttpOptions* http = nullptr;
  BatchQueue* queue = nullptr;
  ServeMetrics* metrics = nullptr;
  std::vector<std::string> class_names;
  ModelLabels model;
};

void add_routes(httplib::Server& server, const Service& service);

}  // namespace textscale::serve
