#!/usr/bin/python3
"""HTTP clients for tests/cli/test_serve.sh that curl cannot play.

  burst URL N BODY [--idle K]   open N connections (and K that send nothing), then POST BODY on all
                                N at the same moment; print each status code (and Retry-After for
                                a 503) on a line, in connection order
  stall URL N SECONDS           open N connections that send half a request line and headers,
                                hold them SECONDS, then close them
  vanish URL                    a client that sends a request and disconnects before the answer,
                                one that disconnects mid-headers, and one mid-body
"""

import http.client
import socket
import struct
import sys
import threading
import time
import urllib.parse


def address(url):
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port


def burst(url, count, body, idle=0):
    host, port = address(url)
    connections = [http.client.HTTPConnection(host, port, timeout=60) for _ in range(count)]
    for connection in connections:
        connection.connect()
    idlers = [socket.create_connection((host, port)) for _ in range(idle)]
    time.sleep(0.3)  # every connection accepted and served by a thread before any request
    start = threading.Barrier(count)
    results = [None] * count

    def send(i):
        start.wait()
        try:
            connections[i].request("POST", "/v1/classify", body=body,
                                   headers={"Content-Type": "application/json"})
            response = connections[i].getresponse()
            response.read()
            retry = response.getheader("Retry-After")
            results[i] = f"{response.status}" + (f" retry-after={retry}" if retry else "")
        except OSError as error:
            results[i] = f"error {error}"
        connections[i].close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for idler in idlers:
        idler.close()
    print("\n".join(results))


def stall(url, count, seconds):
    host, port = address(url)
    sockets = []
    for _ in range(count):
        s = socket.create_connection((host, port))
        s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
        sockets.append(s)
    print(f"stalling {count} connections", flush=True)
    time.sleep(seconds)
    for s in sockets:
        s.close()


def abort(s):
    """Close with a reset (SO_LINGER 0), as a client that vanishes does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def vanish(url):
    host, port = address(url)
    body = b'{"texts": [' + b", ".join([b'"a text whose answer nobody reads"'] * 8) + b"]}"
    head = (b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    for request in (head + body, head[:30], head + body[:10]):
        s = socket.create_connection((host, port))
        s.sendall(request)
        abort(s)
    print("vanished 3 clients")


def main():
    command, url = sys.argv[1], sys.argv[2]
    if command == "burst":
        idle = int(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[5] == "--idle" else 0
        burst(url, int(sys.argv[3]), open(sys.argv[4], "rb").read(), idle)
    elif command == "stall":
        stall(url, int(sys.argv[3]), float(sys.argv[4]))
    elif command == "vanish":
        vanish(url)
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
