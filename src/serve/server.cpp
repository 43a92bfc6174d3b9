#include "textscale/serve/server.h"

#include <sys/socket.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <thread>

#include "routes.h"
#include "textscale/common/error.h"
#include "textscale/common/interrupt.h"
#include "textscale/common/log.h"
#include "textscale/preprocess/source.h"
#include "textscale/serve/inference_worker.h"

namespace textscale::serve {

namespace {

// httplib's thread pool, telling the batch queue how many connections are being served.
class CountingPool final : public httplib::TaskQueue {
 public:
  CountingPool(std::size_t threads, BatchQueue& queue) : pool_(threads), queue_(queue) {}
  void enqueue(std::function<void()> serve_connection) override {
    pool_.enqueue([this, serve_connection = std::move(serve_connection)] {
      queue_.connection_opened();
      struct Closed {
        BatchQueue& queue;
        ~Closed() { queue.connection_closed(); }
      } closed{queue_};
      serve_connection();
    });
  }
  void shutdown() override { pool_.shutdown(); }

 private:
  httplib::ThreadPool pool_;
  BatchQueue& queue_;
};

// The first 12 hex digits of the file's SHA-256: which weights are served.
std::string file_revision(const std::string& path) {
  preprocess::ByteSource source(path, true);
  std::vector<char> buffer(1 << 20);
  while (source.read(buffer.data(), buffer.size()) > 0) {
  }
  return source.sha256_hex().substr(0, 12);
}

// SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second server on the same
// port would start and share the connections instead of failing. Keeps the listening socket in
// `listening`.
void listen_options(httplib::Server& server, int& listening) {
  server.set_socket_options([&listening](int socket) {
    const int yes = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listening = socket;
  });
}

void configure(httplib::Server& server, const HttpOptions& http, BatchQueue& queue) {
  server.new_task_queue = [threads = http.http_threads, &queue] {
    return new CountingPool(static_cast<std::size_t>(threads), queue);
  };
  server.set_read_timeout(http.read_timeout_s, 0);
  server.set_write_timeout(http.write_timeout_s, 0);
  server.set_keep_alive_timeout(http.keep_alive_timeout_s);
  server.set_keep_alive_max_count(static_cast<std::size_t>(http.keep_alive_requests));
  server.set_payload_max_length(http.max_body);
  server.set_tcp_nodelay(true);
}

// Binds and listens; returns the port. httplib listens with a backlog of 5 connections, which
// drops the SYNs of a burst of new clients (each then retries after a second): listening again
// on the same socket raises it to the system's limit.
int bind(httplib::Server& server, const HttpOptions& http, const int& listening) {
  int port = http.port;
  if (port == 0) {
    port = server.bind_to_any_port(http.host);
    if (port < 0) throw Error("serve: cannot listen on " + http.host + " (any port)");
  } else if (!server.bind_to_port(http.host, port)) {
    throw Error("serve: cannot listen on " + http.host + ":" + std::to_string(port) +
                " (in use, or not an address of this machine)");
  }
  if (listening >= 0) ::listen(listening, SOMAXCONN);
  return port;
}

std::string join(const std::vector<std::string>& names) {
  std::string joined;
  for (const auto& name : names) joined += (joined.empty() ? "" : ", ") + name;
  return joined;
}

void print_start_line(const ServeOptions& options, int port, const ModelLabels& model, const InferenceWorker& worker,
                      const std::string& unescape) {
  const std::string host =
      options.http.host.find(':') == std::string::npos ? options.http.host : "[" + options.http.host + "]";
  std::printf(
      "textscale serve: listening on http://%s:%d (model %s revision %s from %s; %lld classes: %s; backend %s, "
      "%d threads; %d HTTP threads; batches of up to %lld texts, max delay %g ms, queue %lld requests; unescape "
      "%s)\n",
      host.c_str(), port, model.model.c_str(), model.revision.c_str(), model.checkpoint.c_str(),
      static_cast<long long>(model.classes), join(worker.class_names()).c_str(), worker.backend_name().c_str(),
      worker.threads(), options.http.http_threads, static_cast<long long>(options.batch.max_batch),
      options.batch.max_delay_ms, static_cast<long long>(options.batch.max_queue), unescape.c_str());
  std::fflush(stdout);
}

// Stops `server` once a signal arrives (polling the flag interrupt.h's handlers set), until
// `done`.
void stop_on_signal(httplib::Server& server, const std::atomic<bool>& done) {
  while (!done) {
    if (interrupt_signal() != 0 && server.is_running()) {
      TS_LOG(info, "serve: signal " << interrupt_signal() << ": finishing the requests in flight");
      server.stop();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

void serve(const ServeOptions& options) {
  // A client that disconnects before its answer is written must not end the process.
  std::signal(SIGPIPE, SIG_IGN);
  ModelSetup setup = model_setup(options.model, options.batch.max_batch);
  const std::string unescape = to_string(setup.text.unescape);
  ModelLabels model{setup.info.model.name, file_revision(options.model.checkpoint), options.model.checkpoint,
                    setup.info.model.classes, ""};
  ServeMetrics metrics(options.batch.max_batch);
  BatchQueue queue(options.batch.max_batch,
                   std::chrono::microseconds(static_cast<std::int64_t>(options.batch.max_delay_ms * 1000.0)),
                   options.batch.max_queue);
  InferenceWorker worker(std::move(setup), queue, metrics);
  worker.start();
  model.backend = worker.backend_name();
  metrics.set_model(model);

  httplib::Server server;
  int listening = -1;
  listen_options(server, listening);
  configure(server, options.http, queue);
  const Service service{&options.http, &queue, &metrics, worker.class_names(), model};
  add_routes(server, service);
  const int port = bind(server, options.http, listening);
  print_start_line(options, port, model, worker, unescape);

  std::atomic<bool> done{false};
  std::thread watcher(stop_on_signal, std::ref(server), std::cref(done));
  const bool listened = server.listen_after_bind();  // returns once every HTTP thread has finished
  done = true;
  watcher.join();
  queue.close();
  worker.join();
  if (!listened && interrupt_signal() == 0) throw Error("serve: the listening socket failed");
  TS_LOG(info, "serve: stopped");
}

}  // namespace textscale::serve
