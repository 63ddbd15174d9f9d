"""A Socket Mode server on loopback, in the style of slack-sdk's own mock server: the fake Slack
answers ``apps.connections.open`` with its ``ws://`` URL; each connection gets ``hello``, then
whatever envelopes the test sends, and every frame the app sends back is recorded."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve


class SocketModeServer:
    """Accepts Socket Mode connections; the newest one is the one envelopes go to."""

    def __init__(self) -> None:
        self._server: Server | None = None
        self._lock = threading.Lock()
        self._connections: list[ServerConnection] = []
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        self.url = ""

    def start(self) -> str:
        """Listen on a free loopback port; returns the ``ws://`` URL to hand out."""
        self._server = serve(self._handle, "127.0.0.1", 0)
        port = self._server.socket.getsockname()[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"ws://127.0.0.1:{port}/link/?ticket={uuid.uuid4()}"
        return self.url

    def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    @property
    def connections(self) -> int:
        """How many connections the app has opened so far."""
        with self._lock:
            return len(self._connections)

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self._connections.append(connection)
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "applink-test", "approximate_connection_time": 3600},
            "connection_info": {"app_id": "A0DCSTASKS"},
        }
        connection.send(json.dumps(hello))
        try:
            for frame in connection:
                self.received.put(json.loads(frame))
        except ConnectionClosed:
            pass

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` on the newest connection."""
        with self._lock:
            connection = self._connections[-1]
        connection.send(json.dumps(message))

    def slash_command(self, payload: dict[str, Any]) -> str:
        """Send a ``slash_commands`` envelope; returns its envelope ID."""
        envelope_id = str(uuid.uuid4())
        self.send(
            {
                "envelope_id": envelope_id,
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": payload,
            }
        )
        return envelope_id

    def wait_for_ack(self, envelope_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """The app's acknowledgement of ``envelope_id`` (other frames are skipped)."""
        while True:
            frame = self.received.get(timeout=timeout)
            if frame.get("envelope_id") == envelope_id:
                return frame
