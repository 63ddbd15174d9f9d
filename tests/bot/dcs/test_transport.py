"""The lean transport (bot/dcs/transport.py) against real loopback servers: keep-alive, stale
and expired connections, httpx's error classes, and the DCS client's bounds through it."""

from __future__ import annotations

import gzip
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from bot.config import load_settings
from bot.dcs.client import DcsClient, RetryPolicy
from bot.dcs.errors import DcsBadResponseError, DcsUnavailableError
from bot.dcs.transport import StdlibTransport
from bot.testing.loopback import LoopbackHTTPServer, Serving
from bot.testing.simulator import DcsSimulator
from bot.wiring import make_http_client

FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01, total_budget=30.0)
Behaviour = Callable[[BaseHTTPRequestHandler], None]


class _Server(LoopbackHTTPServer):
    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviour = behaviour
        self.peers: list[int] = []  # the client port of each request: one per connection
        self.closed = threading.Event()

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        self.closed.set()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.peers.append(self.client_address[1])
        self.server.behaviour(self)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _answer(
    body: bytes = b"ok", *, close: bool = False, headers: dict[str, str] | None = None
) -> Behaviour:
    def behaviour(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body)
        h.close_connection = close  # close without saying "Connection: close"

    return behaviour


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], tuple[_Server, str]]]:
    running: list[Serving] = []

    def start(behaviour: Behaviour) -> tuple[_Server, str]:
        server = _Server(behaviour)
        running.append(Serving(server))
        return server, running[-1].url

    yield start
    for serving in running:
        serving.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_connection_is_kept_alive_and_reused(
    serve: Callable[[Behaviour], tuple[_Server, str]],
) -> None:
    """Two requests in a row go over one connection, idle in between."""
    server, url = serve(_answer(b"hello"))
    transport = StdlibTransport()
    with httpx.Client(base_url=url, transport=transport) as http:
        assert http.get("/a").text == "hello"
        assert transport.idle_connections() == 1
        assert http.get("/b").text == "hello"
    assert len(server.peers) == 2
    assert server.peers[0] == server.peers[1]


def test_a_connection_the_server_closed_is_not_reused(
    serve: Callable[[Behaviour], tuple[_Server, str]],
) -> None:
    """A server that closes an idle connection (no "Connection: close" said) costs nothing:
    the next request sees it closed and opens another instead of failing."""
    server, url = serve(_answer(close=True))
    with httpx.Client(base_url=url, transport=StdlibTransport()) as http:
        assert http.get("/a").status_code == 200
        assert server.closed.wait(5)
        time.sleep(0.05)  # the FIN reaches our socket
        assert http.get("/b").status_code == 200
    assert server.peers[0] != server.peers[1]


def test_a_connection_idle_past_keepalive_expiry_is_closed_not_reused(
    serve: Callable[[Behaviour], tuple[_Server, str]],
) -> None:
    server, url = serve(_answer())
    clock = Clock()
    with httpx.Client(
        base_url=url, transport=StdlibTransport(keepalive_expiry=5.0, monotonic=clock)
    ) as http:
        http.get("/a")
        clock.now += 4.0
        http.get("/b")  # within the expiry: reused
        clock.now += 5.1
        http.get("/c")
    assert server.peers[0] == server.peers[1] != server.peers[2]


def test_a_body_not_read_to_its_end_closes_its_connection(
    serve: Callable[[Behaviour], tuple[_Server, str]],
) -> None:
    """A response closed early (a body over the size bound) never goes back idle: its unread
    rest would be taken for the next answer."""
    server, url = serve(_answer(b"x" * 200_000))
    transport = StdlibTransport()
    with httpx.Client(base_url=url, transport=transport) as http:
        with http.stream("GET", "/a") as response:
            next(response.iter_bytes())
        assert transport.idle_connections() == 0
        assert len(http.get("/b").content) == 200_000
    assert server.peers[0] != server.peers[1]


def test_chunked_and_gzip_bodies_arrive_decoded(
    serve: Callable[[Behaviour], tuple[_Server, str]],
) -> None:
    def chunked(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for part in (b"hello ", b"world"):
            h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    _, url = serve(chunked)
    transport = StdlibTransport()
    with httpx.Client(base_url=url, transport=transport) as http:
        assert http.get("/").text == "hello world"
        assert transport.idle_connections() == 1
    _, url = serve(_answer(gzip.compress(b"squeezed"), headers={"Content-Encoding": "gzip"}))
    with httpx.Client(base_url=url, transport=StdlibTransport()) as http:
        assert http.get("/").text == "squeezed"


def _silent(h: BaseHTTPRequestHandler) -> None:
    time.sleep(1.0)
    h.close_connection = True


def _hang_up(h: BaseHTTPRequestHandler) -> None:
    h.close_connection = True


def _short_body(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    h.wfile.write(b"only ten b")
    h.close_connection = True


def _bad_status(h: BaseHTTPRequestHandler) -> None:
    h.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
    h.close_connection = True


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (_silent, httpx.ReadTimeout),
        (_hang_up, httpx.RemoteProtocolError),
        (_short_body, httpx.RemoteProtocolError),
        (_bad_status, httpx.RemoteProtocolError),
    ],
)
def test_failures_are_the_httpx_errors_the_dcs_client_classifies(
    serve: Callable[[Behaviour], tuple[_Server, str]],
    behaviour: Behaviour,
    error: type[Exception],
) -> None:
    """Timeouts and broken answers raise what httpcore would raise, so the DCS client retries
    them as transient failures."""
    _, url = serve(behaviour)
    with (
        httpx.Client(base_url=url, transport=StdlibTransport(), timeout=0.3) as http,
        pytest.raises(error),
    ):
        http.get("/").read()


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", transport=StdlibTransport()) as http,
            pytest.raises(httpx.ConnectError),
        ):
            http.get("/")


# -- the DCS client's bounds through the lean transport ---------------------------------------


def _dcs(sim: DcsSimulator, **kwargs: object) -> tuple[httpx.Client, DcsClient]:
    http = httpx.Client(base_url=sim.url, timeout=5.0, transport=StdlibTransport())
    return http, DcsClient(http, "p1", **kwargs)  # type: ignore[arg-type]


def test_a_reset_and_a_503_are_retried_then_the_tasks_read() -> None:
    with DcsSimulator(project_id="p1") as sim:
        iid = sim.add_instance("cache-a")
        sim.add_tasks_bulk(iid, 3)
        sim.inject("reset", count=1, path_contains="/tasks")
        sim.inject("503", count=1, path_contains="/tasks")
        http, client = _dcs(sim, retry=FAST)
        with http:
            assert len(client.list_tasks(iid)) == 3
        assert len([r for r in sim.requests if r.path.endswith("/tasks")]) == 3


def test_a_trickling_answer_ends_at_the_total_deadline() -> None:
    with DcsSimulator(project_id="p1", trickle_delay=0.05) as sim:
        iid = sim.add_instance("cache-a")
        sim.add_tasks_bulk(iid, 5)
        sim.inject("trickle", count=5, path_contains="/tasks")
        http, client = _dcs(sim, retry=RetryPolicy(attempts=1), request_deadline=1.0)
        started = time.monotonic()
        with http, pytest.raises(DcsUnavailableError, match="deadline"):
            client.list_tasks(iid)
        assert time.monotonic() - started < 5.0


def test_a_body_over_16_mb_is_refused_and_its_connection_dropped() -> None:
    with DcsSimulator(project_id="p1") as sim:
        iid = sim.add_instance("cache-a")
        sim.inject("huge", count=1, path_contains="/tasks")
        http, client = _dcs(sim, retry=FAST, sleep=lambda _: None)
        with http:
            with pytest.raises(DcsBadResponseError, match="more than 16 MB"):
                client.list_tasks(iid)
            assert client.list_tasks(iid) == []  # the next request is answered normally


def test_make_http_client_sends_through_the_lean_transport() -> None:
    """The DCS client the bot builds uses the lean transport (AK/SK signed, verified)."""
    with DcsSimulator(project_id="p1", access_key="AK1", secret_key="SK1") as sim:
        iid = sim.add_instance("cache-a")
        env = {
            "DCS_ENDPOINT": sim.url,
            "DCS_PROJECT_ID": "p1",
            "DCS_ACCESS_KEY": "AK1",
            "DCS_SECRET_KEY": "SK1",
        }
        with make_http_client(load_settings(env)) as http:
            assert isinstance(http._transport, StdlibTransport)  # httpx keeps it there
            assert [t.id for t in DcsClient(http, "p1").list_tasks(iid)] == []


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made by the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_verifies_the_server_certificate_by_default(
    serve: Callable[[Behaviour], tuple[_Server, str]], tls_cert: tuple[Path, Path]
) -> None:
    """A certificate nobody vouches for is refused; trusted, the same server answers over a
    kept-alive TLS connection."""
    cert, key = tls_cert
    server, url = serve(_answer(b"secret"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    https = url.replace("http://", "https://")
    with (
        httpx.Client(base_url=https, transport=StdlibTransport()) as http,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        http.get("/")
    trusting = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=https, transport=StdlibTransport(ssl_context=trusting)) as http:
        assert http.get("/a").text == "secret"
        assert http.get("/b").text == "secret"
    assert server.peers[-1] == server.peers[-2]
