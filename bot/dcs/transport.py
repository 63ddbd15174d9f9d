"""A lean ``httpx`` transport for DCS: HTTP/1.1 on the standard library's ``http.client``.

httpcore and h11 spend about a third of the client's CPU per DCS request (``make bench
BENCH_ARGS='--only cycle'``, table "HTTP layer"); a poll cycle at 32 requests in flight is
CPU-bound on one GIL, so that CPU is wall time. This transport keeps what the poller needs and
drops the rest: idle connections on a stack (the newest reused first, no scan of the others),
closed after ``keepalive_expiry`` seconds idle or when the server has closed them; each timeout
of the request (connect, write, read) applied to its phase; failures raised as the ``httpx``
exceptions httpcore would raise, so callers classify them the same way. Auth, redirects, body
decoding and everything above the transport stay ``httpx.Client``'s.

HTTP/1.1 only; request bodies are read whole before sending (DCS requests are GETs).
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}
_Key = tuple[str, str, int]


def _closed_by_peer(sock: socket.socket | None) -> bool:
    """An idle HTTP/1.1 connection with something to read has been closed (or broken) by the
    server: nothing else may arrive on it between two requests."""
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _Body(httpx.SyncByteStream):
    """A response body, read as it arrives; the connection goes back to the idle stack once
    the body was read to its end, else it is closed."""

    def __init__(
        self,
        response: http.client.HTTPResponse,
        conn: http.client.HTTPConnection,
        checkin: Callable[[http.client.HTTPConnection], None],
    ) -> None:
        self._response: http.client.HTTPResponse | None = response
        self._conn = conn
        self._checkin = checkin
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        if response is None:
            return
        while True:
            try:
                chunk = response.read1(65536)
            except TimeoutError as exc:
                raise httpx.ReadTimeout(str(exc) or "timed out") from exc
            except http.client.HTTPException as exc:  # IncompleteRead, a bad chunk size
                raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc
            except OSError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
            if not chunk:
                if response.length:  # read1 ends quietly where read would raise
                    raise httpx.RemoteProtocolError(
                        f"the server closed the connection {response.length} bytes short"
                    )
                self._complete = True
                return
            yield chunk

    def close(self) -> None:
        response, self._response = self._response, None
        if response is None:
            return
        reusable = self._complete and not response.will_close
        response.close()
        if reusable:
            self._checkin(self._conn)
        else:
            self._conn.close()


class StdlibTransport(httpx.BaseTransport):
    """HTTP/1.1 over ``http.client`` connections, kept alive and shared by threads (each
    connection serves one request at a time). ``ssl_context`` defaults to httpx's (certifi,
    ``SSL_CERT_FILE``); ``max_idle`` bounds the idle connections kept per host."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 64,
        keepalive_expiry: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max(0, max_idle)
        self._keepalive_expiry = keepalive_expiry
        self._monotonic = monotonic
        self._idle: dict[_Key, list[tuple[http.client.HTTPConnection, float]]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def idle_connections(self) -> int:
        """How many connections wait idle for a request (for tests and diagnosis)."""
        with self._lock:
            return sum(len(stack) for stack in self._idle.values())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on an idle connection to its host, or a new one; return the
        response with its body still to read. Nothing is retried here (as with httpcore):
        the DCS client retries transient failures itself."""
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        key = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
        timeouts = request.extensions.get("timeout", {})
        body = request.read()
        conn = self._checkout(key, timeouts.get("connect"))
        try:
            response = self._exchange(conn, request, body, timeouts)
        except BaseException:
            conn.close()
            raise
        version = b"HTTP/1.0" if response.version == 10 else b"HTTP/1.1"
        return httpx.Response(
            response.status,
            headers=response.getheaders(),
            stream=_Body(response, conn, lambda c: self._checkin(key, c)),
            extensions={
                "http_version": version,
                "reason_phrase": response.reason.encode("ascii", "replace"),
            },
        )

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> http.client.HTTPResponse:
        """Connect if needed, send the request, read the status line and headers."""
        if conn.sock is None:
            try:
                conn.connect()
            except TimeoutError as exc:
                raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
            except OSError as exc:  # refused, unreachable, a failed TLS handshake
                raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = conn.sock
        try:
            sock.settimeout(timeouts.get("write"))
            conn.putrequest(
                request.method,
                request.url.raw_path.decode("ascii"),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for name, value in request.headers.raw:
                conn.putheader(name, value)
            conn.endheaders(body or None)
        except TimeoutError as exc:
            raise httpx.WriteTimeout(str(exc) or "timed out") from exc
        except OSError as exc:  # a reset or broken pipe: the server dropped the connection
            raise httpx.WriteError(str(exc) or type(exc).__name__) from exc
        try:
            sock.settimeout(timeouts.get("read"))
            return conn.getresponse()
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out") from exc
        except http.client.RemoteDisconnected as exc:
            raise httpx.RemoteProtocolError(
                f"server disconnected without answering: {exc}"
            ) from exc
        except http.client.HTTPException as exc:  # a bad status line, headers too long
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    def _checkout(self, key: _Key, connect_timeout: float | None) -> http.client.HTTPConnection:
        """The newest idle connection to ``key`` still open and fresh, else a new one."""
        while True:
            with self._lock:
                stack = self._idle.get(key)
                if not stack:
                    return self._new(key, connect_timeout)
                conn, since = stack.pop()
            fresh = self._monotonic() - since <= self._keepalive_expiry
            if fresh and not _closed_by_peer(conn.sock):
                return conn
            conn.close()

    def _new(self, key: _Key, connect_timeout: float | None) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            return http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=self._ssl_context
            )
        return http.client.HTTPConnection(host, port, timeout=connect_timeout)

    def _checkin(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            stack = self._idle.setdefault(key, [])
            if not self._closed and len(stack) < self._max_idle:
                stack.append((conn, self._monotonic()))
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections; those in use close when their response does."""
        with self._lock:
            self._closed = True
            idle = [conn for stack in self._idle.values() for conn, _ in stack]
            self._idle.clear()
        for conn in idle:
            conn.close()
