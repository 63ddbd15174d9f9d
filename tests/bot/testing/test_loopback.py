"""Tests for bot.testing.loopback: a real server on a free loopback port that stop() frees."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from bot.testing.loopback import LoopbackHTTPServer, Serving


class Hello(BaseHTTPRequestHandler):
    """Answers every GET with its path."""

    def do_GET(self) -> None:
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


def test_serves_on_a_free_port_until_stopped() -> None:
    """Requests are answered on the port chosen; after stop() the port refuses connections."""
    serving = Serving(LoopbackHTTPServer(("127.0.0.1", 0), Hello))
    url = serving.url
    assert url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{url}/ping", timeout=5).text == "/ping"

    serving.stop()

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/ping", timeout=5)
