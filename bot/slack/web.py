"""Production HTTP for ``serve``: waitress hosting ``POST /slack/events`` (Bolt), ``/livez`` and
``/readyz`` (= ``/healthz``).

Every Slack request passes ``bot.slack.guard`` (malformed: 400/401, replayed: 401) and then
Bolt's signature check (bad or older than 5 minutes: 401).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import waitress
from slack_bolt import App, BoltResponse
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from waitress import wasyncore

from bot.config import ConfigError, Settings
from bot.slack.guard import guard_slack_events

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)
request_log = logging.getLogger("bot.http")

EVENTS_PATH = "/slack/events"
LIVE_PATH = "/livez"
#: ``/healthz`` is the older name of ``/readyz``; both answer the same.
READY_PATHS = ("/readyz", "/healthz")
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
#: Slack payloads are a few KB; refuse anything far larger before it is read.
MAX_BODY_BYTES = 1024 * 1024

HealthCheck = Callable[[], tuple[int, dict[str, Any]]]
#: The Prometheus exposition text and its content type.
MetricsText = Callable[[], tuple[bytes, str]]


def _answer_ssl_check(body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse:
    """Slack's ssl_check ping, answered only after the signature was verified."""
    if body.get("ssl_check") == "1":
        return BoltResponse(status=200, body="")
    return next()


def build_bolt_app(settings: Settings, client: WebClient) -> App:
    """The Bolt app for HTTP mode (or Socket Mode), on ``client`` (which carries the bot token).

    Listeners run in Bolt's thread pool after ``ack()`` (``process_before_response=False``).
    The token is not checked while building (no network at start-up): Bolt calls ``auth.test``
    once, on the first request. Bolt's own ssl_check shortcut is replaced by one that runs after
    the signature check, so an unsigned request never gets anything but 401.
    """
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    )
    if not secret and not settings.socket_mode:
        raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET to verify requests from Slack")
    app = App(
        signing_secret=secret,  # Bolt skips the check for Socket Mode requests only
        client=client,
        process_before_response=False,
        token_verification_enabled=False,
        request_verification_enabled=True,
        ssl_check_enabled=False,
        logger=logging.getLogger("slack_bolt.App"),
    )
    app.use(_answer_ssl_check)
    return app


#: ``apps.connections.open`` errors that mean the app token itself is wrong: a configuration
#: problem (exit 2), not a crash to restart.
_BAD_APP_TOKEN = {
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "not_allowed_token_type",
    "missing_scope",
}


def start_socket_mode(app: App, app_token: str) -> Callable[[], None]:
    """Connect ``app`` to Slack over Socket Mode in background threads; returns ``stop``.

    slack-sdk's own client reconnects when Slack asks (``disconnect``) or the connection drops.
    A token Slack refuses raises ``ConfigError`` naming SLACK_APP_TOKEN; another refusal
    ``ConnectionError`` (the command line prints either as one line).
    """
    handler = SocketModeHandler(app, app_token)
    try:
        handler.connect()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "unknown_error")
        if error in _BAD_APP_TOKEN:
            raise ConfigError(
                [
                    f"SLACK_APP_TOKEN: Slack refused it ({error}); use the app-level token "
                    "(xapp-…) with the connections:write scope, from the app's Basic "
                    "Information page, e.g. SLACK_APP_TOKEN=xapp-1-A0123-4567-abcdef"
                ]
            ) from None
        raise ConnectionError(f"Slack refused a Socket Mode connection ({error})") from None

    def stop() -> None:
        # slack-sdk's receiving thread holds the connection's lock for up to 3 s while it waits
        # for a frame, and its close() waits for that lock: shutting the socket down first
        # ends the wait at once, so SIGTERM is not held for the rest of it.
        session = getattr(handler.client, "current_session", None)
        sock = getattr(session, "sock", None)
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        handler.close()  # type: ignore[no-untyped-call]

    return stop


def _respond(
    start_response: StartResponse, status: str, body: bytes, content_type: str
) -> Iterable[bytes]:
    start_response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(body)))],
    )
    return [body]


def make_wsgi_app(
    bolt_app: App | None, health: HealthCheck, metrics: MetricsText | None = None
) -> WSGIApplication:
    """Route ``POST /slack/events`` to Bolt and ``GET /readyz`` (= ``/healthz``) to ``health``;
    ``GET /livez`` answers 200 touching nothing; ``GET /metrics`` the Prometheus text of
    ``metrics``; 404 otherwise.

    Without a Bolt app (Socket Mode) ``/slack/events`` is not served.
    """
    slack = (
        guard_slack_events(SlackRequestHandler(bolt_app, path=EVENTS_PATH))
        if bolt_app is not None
        else None
    )

    def wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if path == LIVE_PATH and method in ("GET", "HEAD"):
            return _respond(start_response, "200 OK", b'{"status":"ok"}', "application/json")
        if path in READY_PATHS and method in ("GET", "HEAD"):
            try:
                code, report = health()
            except Exception:
                logger.exception("health check failed")
                code, report = 503, {"status": "error"}
            status = "200 OK" if code == 200 else f"{code} Service Unavailable"
            body = json.dumps(report).encode()
            return _respond(start_response, status, body, "application/json")
        if metrics is not None and path == METRICS_PATH and method in ("GET", "HEAD"):
            text, content_type = metrics()
            return _respond(start_response, "200 OK", text, content_type)
        if slack is not None and path == EVENTS_PATH and method == "POST":
            return slack(environ, start_response)
        return _respond(start_response, "404 Not Found", b"Not Found", "text/plain; charset=utf-8")

    return wsgi_app


def log_slack_requests(
    app: WSGIApplication, clock: Callable[[], float] = time.monotonic
) -> WSGIApplication:
    """``app`` with one log line per request to ``/slack/events``: method, path, status and
    milliseconds, never the body (it carries user and channel IDs and command text)."""

    def logged(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != EVENTS_PATH:
            return app(environ, start_response)
        began = clock()
        seen = {"status": "500"}  # what waitress answers when the app raises

        def capture(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        try:
            return app(environ, capture)
        finally:
            fields = {
                "method": environ.get("REQUEST_METHOD", "-"),
                "path": EVENTS_PATH,
                "status": int(seen["status"]) if seen["status"].isdigit() else 0,
                "ms": round((clock() - began) * 1000, 1),
            }
            request_log.info("request", extra={"fields": fields})

    return logged


def _starting() -> tuple[int, dict[str, Any]]:
    return 503, {"status": "starting"}


class Site:
    """The WSGI app of ``serve``, listening before anything slow starts: ``/livez`` and
    ``/metrics`` answer at once, ``/readyz`` says ``starting`` (503) and ``/slack/events`` gets
    503 until ``ready``. Every request to ``/slack/events`` is logged (``log_slack_requests``)."""

    def __init__(self, metrics: MetricsText | None = None) -> None:
        self._metrics = metrics
        self._app = make_wsgi_app(None, _starting, metrics)
        self._ready = False
        self._logged = log_slack_requests(self._route)

    def ready(self, bolt_app: App | None, health: HealthCheck) -> None:
        """Serve Slack (unless ``bolt_app`` is None: Socket Mode) and the real readiness."""
        self._app = make_wsgi_app(bolt_app, health, self._metrics)
        self._ready = True

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request with the current routes."""
        return self._logged(environ, start_response)

    def _route(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not self._ready and environ.get("PATH_INFO") == EVENTS_PATH:
            body = b"starting, try again shortly"
            return _respond(start_response, "503 Service Unavailable", body, "text/plain")
        return self._app(environ, start_response)


class HttpServer:
    """A waitress server in a background thread, stoppable from another thread."""

    def __init__(self, wsgi_app: WSGIApplication, host: str = "0.0.0.0", port: int = 3000) -> None:  # noqa: S104 - a web dyno listens on every interface
        self._app = wsgi_app
        self._host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Bind and serve in a daemon thread; returns the bound port (``port=0`` picks one)."""
        self._server = waitress.create_server(
            self._app,
            host=self._host,
            port=self._port,
            ident="dcs-tasks-bot",
            max_request_body_size=MAX_BODY_BYTES,
            clear_untrusted_proxy_headers=True,
        )
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._thread.start()
        port = getattr(self._server, "effective_port", None)
        if port is None:  # several sockets (not seen here): the first one's port
            port = self._server.effective_listen[0][1]
        port = int(port)
        logger.info("HTTP listening on %s:%d", self._host, port)
        return port

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, and wait for the worker threads."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        trigger = getattr(server, "trigger", None)
        if trigger is not None:
            # Closing the sockets from the loop's own thread ends its loop cleanly.
            try:
                trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            except OSError:  # its wake-up pipe is gone: close here, the loop sees an empty map
                logger.warning("HTTP server's wake-up pipe was closed; closing from this thread")
                wasyncore.close_all(server._map)
            thread.join(timeout)
            server.task_dispatcher.shutdown(timeout=timeout)
        else:  # several sockets (a host name with IPv4 and IPv6): waitress's own close
            server.close()
            thread.join(timeout)
