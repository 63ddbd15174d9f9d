"""A loopback TCP proxy that can take a server away without touching it: point a store at the
proxy, then ``down()`` (cut every connection and refuse new ones, as a stopped PostgreSQL does)
or ``stall()`` (accept and hold, answer nothing: a network partition). The machine's PostgreSQL
keeps running for everyone else."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``down``/``stall``/``up`` switch its behaviour."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._mode = "up"
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self.port = 0

    @classmethod
    def for_url(cls, url: str) -> FaultProxy:
        """A proxy in front of the server of a ``postgresql://`` URL."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432)

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def start(self) -> int:
        """Listen (on port 0 the first time, the same port after ``down``); returns the port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self.port

    def up(self) -> None:
        """Forward again (listening again after ``down``)."""
        with self._lock:
            self._mode = "up"
        if self._listener is None:
            self.start()

    def stall(self) -> None:
        """Accept connections but forward nothing, either way, on old and new connections."""
        with self._lock:
            self._mode = "stall"

    def down(self) -> None:
        """Cut every connection and refuse new ones (connection refused)."""
        with self._lock:
            self._mode = "down"
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        """Stop for good."""
        self._closed.set()
        self.down()

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: down() or close()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._target, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            if self._mode == "down":
                client.close()
                upstream.close()
                return
            self._sockets |= {client, upstream}
        pair = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                if self._mode == "stall":  # hold everything: nothing read, nothing sent
                    self._closed.wait(0.1)
                    continue
                readable, _, _ = select.select(list(pair), [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._sockets -= set(pair)
