"""Tests for bot.slack.guard: malformed, unsigned and replayed requests to /slack/events cost
nothing (400/401, one log line, no traceback), over real HTTP to the real Bolt app."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from bot.slack.guard import SeenSignatures, guard_slack_events
from bot.slack.web import HttpServer
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.handlers.conftest import PROD_ID, SIGNING_SECRET, SlackStack

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def stack(simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path) -> Iterator[SlackStack]:
    """The bot's Slack side served by waitress on loopback."""
    simulator.add_instance("cache-prod", instance_id=PROD_ID)
    s = SlackStack(simulator, slack, tmp_path / "state.sqlite")
    s.configure()
    yield s
    s.close()


def signed(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """Headers signing ``body`` (bytes, as sent) the way Slack does."""
    ts = timestamp if timestamp is not None else str(int(time.time()))
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


NOW = str(int(time.time()))


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records of WARNING and above."""
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


# what is sent -> the status it gets
HOSTILE: list[Any] = [
    pytest.param(
        b"command=%2Fdcs-tasks&text=help",
        {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00", "Content-Type": FORM},
        401,
        id="timestamp abc",
    ),
    pytest.param(b"text=help", {"Content-Type": FORM}, 401, id="unsigned"),
    pytest.param(
        b"text=help",
        {"X-Slack-Request-Timestamp": "1e9", "X-Slack-Signature": "v0=0", "Content-Type": FORM},
        401,
        id="timestamp 1e9",
    ),
    pytest.param(
        b"\xff\xfe\x00text",
        {"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": "v0=00", "Content-Type": FORM},
        400,
        id="non-UTF-8 body",
    ),
    pytest.param(b"\xff\xfe\x00text", None, 400, id="non-UTF-8 body, signed"),
    pytest.param(b"payload=%7Bnot-json", None, 400, id="payload not JSON, signed"),
    pytest.param(b"payload=%5B1%2C2%5D", None, 400, id="payload a JSON list, signed"),
    pytest.param(b"payload=", None, 400, id="empty payload, signed"),
]


@pytest.mark.parametrize(("body", "headers", "status"), HOSTILE)
def test_a_hostile_request_gets_400_or_401_and_one_log_line(
    stack: SlackStack,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    headers: dict[str, str] | None,
    status: int,
) -> None:
    """Never 500, never a traceback: one WARNING line, and nothing ran."""
    with caplog.at_level(logging.INFO):
        response = stack.client.post(
            f"{stack.url}/slack/events",
            content=body,
            headers=headers if headers is not None else signed(body),
        )
    assert response.status_code == status
    assert response.json() == {"error": "invalid request"}
    ours = [r for r in warnings(caplog) if r.name != "waitress.queue"]  # load, not the request
    assert [r.name for r in ours] == ["bot.slack.guard"]
    assert all(r.exc_info is None for r in caplog.records)
    assert stack.slack.calls == []
    assert stack.sim.requests == []


def test_two_hundred_hostile_requests_log_two_hundred_short_lines(
    stack: SlackStack, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood of malformed requests writes one short line each (no traceback pages)."""
    with caplog.at_level(logging.INFO):
        for i in range(200):
            stack.client.post(
                f"{stack.url}/slack/events",
                content=b"payload=%7B" + str(i).encode(),
                headers={"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=1"},
            )
    lines = [r.getMessage() for r in warnings(caplog) if r.name != "waitress.queue"]
    assert len(lines) == 200
    assert all(r.exc_info is None for r in caplog.records)
    assert sum(len(line) for line in lines) < 200 * 200


def test_a_replayed_signed_command_does_not_run_twice(stack: SlackStack) -> None:
    """The same signed request sent again within the window gets 401 and is not answered."""
    body, url = stack.command_body("help")
    first = stack.post_signed(body)
    assert first.status_code == 200
    stack.reply(url)
    again = stack.client.post(
        f"{stack.url}/slack/events", content=body, headers=dict(first.request.headers)
    )
    assert again.status_code == 401
    assert stack.command("help")["response_type"] == "ephemeral"  # the next one still works
    assert len(stack.slack.responses_to(url)) == 1


def _bolt_like(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A stand-in for Bolt: 401 unless the signature header says ``v0=good``."""
    ok = environ.get("HTTP_X_SLACK_SIGNATURE", "").startswith("v0=good")
    start_response("200 OK" if ok else "401 Unauthorized", [("Content-Length", "0")])
    return [b""]


def test_signatures_bolt_refuses_are_not_remembered() -> None:
    """A made-up signature is forgotten once Bolt refused it, so no flood fills the memory;
    a good one is remembered and refused the second time."""
    seen = SeenSignatures()
    server = HttpServer(guard_slack_events(_bolt_like, seen=seen), host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{server.start()}/slack/events"
    try:
        with httpx.Client() as client:
            for i in range(20):
                headers = {"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": f"v0=bad{i}"}
                assert client.post(url, content=b"a=1", headers=headers).status_code == 401
            assert len(seen) == 0
            good = {"X-Slack-Request-Timestamp": NOW, "X-Slack-Signature": "v0=good"}
            assert client.post(url, content=b"a=1", headers=good).status_code == 200
            assert client.post(url, content=b"a=1", headers=good).status_code == 401
            assert len(seen) == 1
    finally:
        server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_signature_is_forgotten_when_its_timestamp_leaves_the_window() -> None:
    """Remembered until timestamp + 5 minutes, then forgotten (Bolt refuses it as stale then)."""
    clock = Clock()
    seen = SeenSignatures(clock=clock)
    assert seen.claim("v0=a", int(clock.now))
    assert not seen.claim("v0=a", int(clock.now))
    clock.now += 301
    assert seen.claim("v0=b", int(clock.now))
    assert len(seen) == 1


def test_memory_is_bounded_and_the_oldest_go_first() -> None:
    """At most max_remembered signatures are kept."""
    clock = Clock()
    seen = SeenSignatures(max_remembered=3, clock=clock)
    for i in range(5):
        assert seen.claim(f"v0={i}", int(clock.now))
    assert len(seen) == 3
    assert seen.claim("v0=0", int(clock.now))  # the oldest was let go
    assert not seen.claim("v0=4", int(clock.now))
