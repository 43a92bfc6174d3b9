#!/usr/bin/python3
"""The peer of `textscale serve` that a user would otherwise write: the same PyTorch model
(bench/peer_models.py, weights from a textscale checkpoint) behind Python's
http.server.ThreadingHTTPServer, one forward pass per request, no batching.

  POST /v1/classify {"text": "..."} -> {"predicted", "index", "probabilities": {class: p}}

Text is encoded as textscale encodes it for a character model (bench/peer_preprocess.py's
encode_chars): Zhang's 69-symbol alphabet, letters lower-cased, anything else code 0, the first
1014 characters, reversed. PyTorch runs on --threads intra-op threads (torch.set_num_threads),
the same count as textscale's --threads. HTTP/1.1 with keep-alive, as textscale serves.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/peer_serve.py \\
        --checkpoint RUN/best.h5 [--host 127.0.0.1] [--port 0] [--threads 2]

Prints "listening on http://HOST:PORT" once ready; stops on SIGINT or SIGTERM.
"""

import argparse
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import h5py
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_models import CHAR_LENGTH, Crepe, build_model  # noqa: E402
from peer_preprocess import encode_chars  # noqa: E402
from peer_train import load_textscale_weights  # noqa: E402


def load(path):
    """(model in eval mode, class names) of a textscale character-model checkpoint."""
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model"])
        classes = [c.decode() if isinstance(c, bytes) else str(c) for c in f.attrs["classes"]]
        count = int(f.attrs["num_classes"])
    names = classes if len(classes) == count else [str(c) for c in range(count)]
    hyper = config.get("hyperparameters", {})
    if config["name"].startswith("crepe-") and "features" in hyper:  # widths as trained (tests' small ones)
        model = Crepe(count, features=hyper["features"], hidden=hyper["fc"], init_std=0.05)
    else:
        model = build_model(config["name"], count, shortcut=hyper.get("shortcut", False))
    load_textscale_weights(model, path)
    return model.eval(), names


def make_handler(model, names):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm the body would wait for
        # the client's delayed ACK of the headers (40 ms on Linux). textscale sets TCP_NODELAY too.
        disable_nagle_algorithm = True

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            try:
                text = json.loads(self.rfile.read(length))["text"]
            except (ValueError, KeyError, TypeError):
                return self.answer(400, {"error": "expected {\"text\": \"...\"}"})
            codes, _ = encode_chars([text], CHAR_LENGTH)
            with torch.inference_mode():
                probabilities = torch.softmax(model(torch.from_numpy(codes)), dim=1)[0].tolist()
            index = max(range(len(names)), key=lambda c: probabilities[c])
            self.answer(200, {"predicted": names[index], "index": index,
                              "probabilities": dict(zip(names, probabilities))})

        def log_message(self, *args):
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, names = load(args.checkpoint)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(model, names))
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # a client that hangs up is not news
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    print(f"peer_serve: listening on http://{args.host}:{server.server_port} "
          f"({len(names)} classes, torch {torch.__version__}, {torch.get_num_threads()} threads)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()
    sys.stdout.flush()
    os._exit(0)  # without waiting for handler threads (PyTorch aborts if they outlive the interpreter)


if __name__ == "__main__":
    main()
