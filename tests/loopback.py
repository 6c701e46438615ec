"""A threaded HTTP server on 127.0.0.1 and a free port, for tests that fake a web page or an
OpenAI-compatible endpoint (tests never touch the network beyond loopback)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """Start serving `handler` in a daemon thread; returns the server and its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class Endpoint:
    """A fake OpenAI-compatible endpoint: a subclass builds its handler and calls `start(handler)`;
    `url` is then the API root (`http://127.0.0.1:PORT/v1`), and `close()` stops the server."""

    def start(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server, root = serve(handler)
        self.url = root + "/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
