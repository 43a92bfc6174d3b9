// `textscale serve`: a checkpoint behind an HTTP classification service (docs/serve.md).
#include <boost/program_options.hpp>

#include <limits>

#include "textscale/cli/commands.h"
#include "textscale/cli/options.h"
#include "textscale/serve/server.h"

namespace po = boost::program_options;

namespace textscale::cli {

namespace {

void add_http_options(po::options_description& options, serve::HttpOptions& o) {
  options.add_options()                                                                                     //
      ("host", po::value(&o.host)->default_value(o.host), "address to listen on (loopback by default)")     //
      ("port", po::value(&o.port)->default_value(o.port), "port to listen on; 0: any free port (printed)")  //
      ("http-threads", po::value(&o.http_threads)->default_value(o.http_threads),
       "connections served at once: each keep-alive connection holds one thread while it is open")  //
      ("read-timeout", po::value(&o.read_timeout_s)->default_value(o.read_timeout_s),
       "seconds one read from a client may wait")  //
      ("write-timeout", po::value(&o.write_timeout_s)->default_value(o.write_timeout_s),
       "seconds one write to a client may wait")  //
      ("keep-alive-timeout", po::value(&o.keep_alive_timeout_s)->default_value(o.keep_alive_timeout_s),
       "seconds an idle keep-alive connection is kept")  //
      ("keep-alive-requests", po::value(&o.keep_alive_requests)->default_value(o.keep_alive_requests),
       "requests one connection may make before it is closed")  //
      ("max-body", po::value(&o.max_body)->default_value(o.max_body),
       "bytes of a request body (after Content-Encoding); more: 413")                                        //
      ("max-texts", po::value(&o.max_texts)->default_value(o.max_texts), "texts in one request; more: 413")  //
      ("max-text-bytes", po::value(&o.max_text_bytes)->default_value(o.max_text_bytes),
       "bytes of one text; more: 413")  //
      ("access-log", po::bool_switch(&o.access_log), "one line per request on stderr");
}

void add_batch_options(po::options_description& options, serve::BatchOptions& o) {
  options.add_options()                                                                                //
      ("max-batch", po::value(&o.max_batch)->default_value(o.max_batch), "texts in one forward pass")  //
      ("max-delay-ms", po::value(&o.max_delay_ms)->default_value(o.max_delay_ms),
       "once the model is free, the longest it waits for more requests to fill a batch (not at all when "
       "every open connection has a request waiting)")  //
      ("max-queue", po::value(&o.max_queue)->default_value(o.max_queue),
       "requests waiting for the model; more are answered 503");
}

void check(const serve::ServeOptions& o) {
  const auto at_least = [](std::int64_t value, std::int64_t least, const char* option) {
    if (value < least) throw UsageError{std::string("--") + option + " must be at least " + std::to_string(least)};
  };
  if (o.model.checkpoint.empty()) throw UsageError{"--checkpoint is required"};
  if (o.http.port < 0 || o.http.port > 65535) throw UsageError{"--port must be between 0 and 65535"};
  at_least(o.http.http_threads, 1, "http-threads");
  at_least(o.http.read_timeout_s, 1, "read-timeout");
  at_least(o.http.write_timeout_s, 1, "write-timeout");
  at_least(o.http.keep_alive_timeout_s, 1, "keep-alive-timeout");
  at_least(o.http.keep_alive_requests, 1, "keep-alive-requests");
  at_least(static_cast<std::int64_t>(o.http.max_body), 1, "max-body");
  at_least(o.http.max_texts, 1, "max-texts");
  at_least(static_cast<std::int64_t>(o.http.max_text_bytes), 1, "max-text-bytes");
  at_least(o.batch.max_batch, 1, "max-batch");
  at_least(o.batch.max_queue, 1, "max-queue");
  if (!(o.batch.max_delay_ms >= 0.0 && o.batch.max_delay_ms <= 60000.0))
    throw UsageError{"--max-delay-ms must be between 0 and 60000"};
  // A batch's texts share one buffer with 32-bit offsets (preprocess::FieldSpan).
  const auto most_texts = static_cast<double>(std::max(o.batch.max_batch, o.http.max_texts));
  if (most_texts * static_cast<double>(o.http.max_text_bytes) >= std::numeric_limits<std::uint32_t>::max())
    throw UsageError{"--max-text-bytes times the larger of --max-batch and --max-texts must stay under 4 GiB"};
}

}  // namespace

int serve_command(const std::vector<std::string>& arguments) {
  serve::ServeOptions o;
  std::string unescape = "none";
  BackendArguments backend_arguments;
  po::options_description options(
      "textscale serve: a checkpoint behind an HTTP classification service (docs/serve.md)\n\n"
      "usage: textscale serve --checkpoint RUN/best.h5 [--host 127.0.0.1] [--port 8080]\n"
      "  POST /v1/classify {\"text\": \"...\"} or {\"texts\": [...]}; GET / (a page), /healthz, /metrics\n"
      "  SIGINT or SIGTERM: stop accepting, answer the requests in flight, exit 0");
  options.add_options()("help,h", "show this help")("checkpoint", po::value(&o.model.checkpoint), "checkpoint file")(
      "vocab-from", po::value(&o.model.vocab_from),
      "the preprocessed training file, for a checkpoint that does not record how its text was encoded")(
      "unescape", po::value(&unescape)->default_value(unescape),
      "backslash sequences in request texts: none (JSON texts are real text) | newline | backslash | training "
      "(as the training file was read)");
  add_http_options(options, o.http);
  add_batch_options(options, o.batch);
  backend_arguments.add(options, "CPU threads of the model (0: all cores)");
  po::variables_map values;
  if (!parse_options(arguments, options, values)) return 0;
  if (unescape == "training")
    o.model.unescape.reset();
  else
    o.model.unescape = parse_unescape(unescape);
  o.model.backend = backend_arguments.options();
  check(o);
  serve::serve(o);
  return 0;
}

}  // namespace textscale::cli
