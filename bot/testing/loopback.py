"""The one loopback HTTP server helper of the test doubles: a ``ThreadingHTTPServer`` served by
a daemon thread, on port 0 by default, that stops within a few hundredths of a second."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

#: serve_forever's poll interval: how long stop() can wait for the serving loop to notice.
POLL_INTERVAL = 0.02


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server for tests: daemon request threads, and a backlog deep enough for
    a poller that opens 32 connections at once (socketserver's default of 5 drops handshakes)."""

    daemon_threads = True
    request_queue_size = 128


class Serving:
    """A started server and the thread that serves it; ``stop()`` frees the port."""

    def __init__(self, server: ThreadingHTTPServer, *, name: str = "loopback") -> None:
        self.server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name=name,
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the server (no trailing slash)."""
        host, port = self.server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the serving thread."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
