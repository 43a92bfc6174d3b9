// `textscale serve`: the model behind an HTTP server (docs/serve.md).
//
// serve() loads the model on its inference thread, binds host:port (port 0: any free port),
// prints one line to standard output, "textscale serve: listening on http://HOST:PORT (...)",
// with the model, classes, backend, threads and batching options, and serves until SIGINT or
// SIGTERM. Then it stops accepting connections, lets every HTTP thread finish the request it is
// reading or answering (an idle keep-alive connection is closed when its next request would
// begin, after at most --keep-alive-timeout; one still waiting for a free thread is closed
// unanswered), classifies everything still queued, and returns: a signal is the normal way to
// stop a server, not an error.
//
// Throws InputError for a checkpoint that cannot be served, and Error when the address cannot be
// bound.
#pragma once

#include "textscale/serve/serve_options.h"

namespace textscale::serve {

void serve(const ServeOptions& options);

}  // namespace textscale::serve
