// Everything `textscale serve` can be told, resolved to plain values (docs/serve.md explains each).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "textscale/engine/backend_options.h"
#include "textscale/preprocess/options.h"

namespace textscale::serve {

// The HTTP side: where to listen, how many connections at once, how long a client may stall, and
// the limits every request is held to.
struct HttpOptions {
  std::string host = "127.0.0.1";          // loopback unless told otherwise
  int port = 8080;                         // 0: any free port (the bound one is printed)
  int http_threads = 16;                   // connections served at once (one thread per keep-alive connection)
  int read_timeout_s = 5;                  // one read from a client may wait this long
  int write_timeout_s = 5;                 // one write to a client may wait this long
  int keep_alive_timeout_s = 5;            // an idle keep-alive connection is closed after this long
  int keep_alive_requests = 100;           // requests on one connection before it is closed
  std::size_t max_body = 1u << 20;         // bytes of a request body (after Content-Encoding)
  std::int64_t max_texts = 64;             // texts in one request
  std::size_t max_text_bytes = 64u << 10;  // bytes of one text
  bool access_log = false;                 // one stderr line per request
};

// Dynamic batching: requests waiting for the model are gathered into one forward pass.
struct BatchOptions {
  std::int64_t max_batch = 64;   // texts in one forward pass
  double max_delay_ms = 5.0;     // once the model is free, the longest it waits for a batch to fill
  std::int64_t max_queue = 256;  // requests waiting for the model; more are answered 503
};

// The model and how text reaches it.
struct ModelOptions {
  std::string checkpoint;
  std::string vocab_from;  // for a checkpoint that does not carry its text encoding
  // How backslash sequences in a text are read; nullopt: as the training file was read.
  std::optional<preprocess::Unescape> unescape = preprocess::Unescape::none;
  engine::BackendOptions backend;
};

struct ServeOptions {
  HttpOptions http;
  BatchOptions batch;
  ModelOptions model;
};

}  // namespace textscale::serve
