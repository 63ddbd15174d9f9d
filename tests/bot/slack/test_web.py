"""Tests for bot.slack.web: waitress serving Bolt on /slack/events (signatures always checked) and
/healthz, started on port 0 and stopped from another thread."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.config import load_settings
from bot.slack.web import HttpServer, build_bolt_app, make_wsgi_app
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.handlers.conftest import PROD_ID, SIGNING_SECRET, SlackStack


@pytest.fixture
def stack(simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path) -> Iterator[SlackStack]:
    """The bot's Slack side served by waitress on loopback."""
    simulator.add_instance("cache-prod", instance_id=PROD_ID)
    s = SlackStack(simulator, slack, tmp_path / "state.sqlite")
    s.configure()
    yield s
    s.close()


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start WSGI apps on loopback port 0; every server is stopped afterwards."""
    servers: list[HttpServer] = []

    def start(app: Any) -> str:
        server = HttpServer(app, host="127.0.0.1", port=0)
        servers.append(server)
        return f"http://127.0.0.1:{server.start()}"

    yield start
    for server in servers:
        server.stop()


def assert_refused_and_ignored(stack: SlackStack, response: httpx.Response, url: str) -> None:
    """401, and the request did nothing: a valid command sent after it is answered, it is not."""
    assert response.status_code == 401
    assert stack.command("help")["response_type"] == "ephemeral"
    assert stack.slack.responses_to(url) == []
    assert stack.sim.requests == []


# --- signatures --------------------------------------------------------------------------------


def test_a_signed_request_is_acked_with_an_empty_200(stack: SlackStack) -> None:
    """A correctly signed slash command gets an empty 200 at once, the answer comes later."""
    body, url = stack.command_body("help")
    response = stack.post_signed(body)
    assert (response.status_code, response.text) == (200, "")
    assert "/dcs-tasks list" in json.dumps(stack.reply(url))


def test_a_wrong_secret_gets_401_and_nothing_else(stack: SlackStack) -> None:
    """A signature made with another secret is refused before any listener runs."""
    body, url = stack.command_body("list")
    response = stack.post_signed(body, secret="not-the-signing-secret")
    assert response.json() == {"error": "invalid request"}
    assert_refused_and_ignored(stack, response, url)


@pytest.mark.parametrize("age", [301, 3600, -301])
def test_a_stale_signature_gets_401(stack: SlackStack, age: int) -> None:
    """A request signed more than 5 minutes away from now is refused (replays)."""
    body, url = stack.command_body("list")
    response = stack.post_signed(body, timestamp=int(time.time()) - age)
    assert_refused_and_ignored(stack, response, url)


def test_a_recent_signature_is_accepted(stack: SlackStack) -> None:
    """A request signed 4 minutes ago is still accepted."""
    body, url = stack.command_body("help")
    response = stack.post_signed(body, timestamp=int(time.time()) - 240)
    assert response.status_code == 200
    assert stack.reply(url)


def test_a_tampered_body_gets_401(stack: SlackStack) -> None:
    """A body changed after signing is refused."""
    body, url = stack.command_body("list")
    ts = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    response = stack.client.post(
        f"{stack.url}/slack/events",
        content=body.replace("list", "subscribe+%2A"),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        },
    )
    assert_refused_and_ignored(stack, response, url)
    assert stack.store.subscriptions() == []


def test_an_unsigned_request_gets_401(stack: SlackStack) -> None:
    """A request without Slack's headers is refused."""
    body, url = stack.command_body("list")
    response = stack.client.post(
        f"{stack.url}/slack/events",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_refused_and_ignored(stack, response, url)


def test_ssl_check_is_answered_only_when_signed(stack: SlackStack) -> None:
    """Slack's ssl_check gets 200 when signed, and 401 like anything else when not."""
    body = urlencode({"ssl_check": "1", "token": "legacy-verification-token"})
    signed = stack.post_signed(body)
    assert (signed.status_code, signed.text) == (200, "")
    unsigned = stack.post_signed(body, secret="wrong-secret-wrong-secret")
    assert unsigned.status_code == 401


# --- routing -----------------------------------------------------------------------------------


def test_healthz_reports_200_and_503_as_json(serve: Any) -> None:
    """/healthz answers the health check's status and JSON body."""
    verdict: list[tuple[int, dict[str, Any]]] = [(200, {"status": "ok", "pending": 0})]
    base = serve(make_wsgi_app(None, lambda: verdict[0]))
    ok = httpx.get(f"{base}/healthz")
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "application/json"
    assert ok.json() == {"status": "ok", "pending": 0}
    verdict[0] = (503, {"status": "late"})
    late = httpx.get(f"{base}/healthz")
    assert (late.status_code, late.json()) == (503, {"status": "late"})


def test_a_failing_health_check_is_a_503(serve: Any) -> None:
    """A health check that raises gives 503, not a 500 page."""

    def broken() -> tuple[int, dict[str, Any]]:
        raise RuntimeError("boom")

    response = httpx.get(f"{serve(make_wsgi_app(None, broken))}/healthz")
    assert (response.status_code, response.json()) == (503, {"status": "error"})


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/slack/events"), ("POST", "/healthz"), ("POST", "/slack/other")],
)
def test_other_routes_are_404(stack: SlackStack, method: str, path: str) -> None:
    """Only POST /slack/events and GET /healthz exist."""
    assert stack.client.request(method, f"{stack.url}{path}").status_code == 404


def test_without_bolt_only_healthz_is_served(serve: Any) -> None:
    """In Socket Mode (no Bolt app over HTTP) /slack/events does not exist."""
    base = serve(make_wsgi_app(None, lambda: (200, {})))
    assert httpx.post(f"{base}/slack/events", content=b"x").status_code == 404
    assert httpx.get(f"{base}/healthz").status_code == 200


def test_an_oversized_body_is_refused(stack: SlackStack) -> None:
    """A body far larger than any Slack payload is refused before it reaches Bolt."""
    response = stack.client.post(f"{stack.url}/slack/events", content=b"x" * (2 * 1024 * 1024))
    assert response.status_code == 413


# --- the server --------------------------------------------------------------------------------


def test_the_server_stops_from_another_thread() -> None:
    """stop() ends the serving thread and frees the port, even with a kept-alive connection."""
    server = HttpServer(make_wsgi_app(None, lambda: (200, {})), host="127.0.0.1", port=0)
    port = server.start()
    assert port > 0
    thread = server._thread
    assert thread is not None
    with httpx.Client() as keep_alive:
        assert keep_alive.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        server.stop()
        assert not thread.is_alive()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz")
    server.stop()  # a second stop is harmless


def test_the_server_stops_when_its_wake_up_pipe_is_gone() -> None:
    """A trigger pipe closed under the server (as a stray close elsewhere in the process does)
    does not turn stop() into an OSError: the sockets are closed and the thread ends."""
    server = HttpServer(make_wsgi_app(None, lambda: (200, {})), host="127.0.0.1", port=0)
    port = server.start()
    thread = server._thread
    assert thread is not None
    assert server._server is not None
    trigger = server._server.trigger
    os.close(trigger.trigger)  # the write end: pulling the trigger now fails with EBADF
    server.stop()
    assert not thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")


def test_http_mode_needs_a_signing_secret(slack: FakeSlack) -> None:
    """Building the HTTP-mode app without SLACK_SIGNING_SECRET fails instead of trusting anyone."""
    settings = load_settings({"SLACK_BOT_TOKEN": "xoxb-1"})
    with pytest.raises(ValueError, match="SLACK_SIGNING_SECRET"):
        build_bolt_app(settings, WebClient(token="xoxb-1", base_url=slack.url))


def test_building_the_app_calls_nothing(slack: FakeSlack) -> None:
    """Building the app makes no Slack call (auth.test waits for the first request)."""
    settings = load_settings({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s" * 32})
    build_bolt_app(settings, WebClient(token="xoxb-1", base_url=slack.url))
    assert slack.calls == []


def test_a_server_on_a_host_name_stops_too() -> None:
    """A host name that may bind several sockets (IPv4 and IPv6) is served and stopped."""
    server = HttpServer(make_wsgi_app(None, lambda: (200, {})), host="localhost", port=0)
    port = server.start()
    assert httpx.get(f"http://localhost:{port}/healthz").status_code == 200
    thread = server._thread
    server.stop()
    assert thread is not None
    assert not thread.is_alive()
