"""The Slack side on real HTTP: waitress hosting the Bolt app and listeners exactly as the
production wiring builds them (``bot.wiring.slack_app``), against the DCS simulator, the fake Slack
Web API and a real SQLite store; requests signed as Slack signs them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk import WebClient

from bot.config import Settings, load_settings
from bot.dcs.client import DcsClient, RetryPolicy
from bot.slack.web import HttpServer, make_wsgi_app
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from bot.wiring import Components, build, handler_deps, slack_app
from handlers.deps import Deps
from state.base import StateStore
from tests.conftest import SLACK_TOKEN, bot_env
from tests.slack_requests import command_body, post_signed
from tests.waiting import wait_until

SIGNING_SECRET = "signing-secret-0123456789"
CHANNEL = "C0QUERIES"
USER = "U0ALICE"
PROD_ID = "11111111-1111-4111-8111-111111111111"
STAGE_ID = "22222222-2222-4222-8222-222222222222"
#: Attempts per DCS request in these tests (an injected fault with this count exhausts them).
ATTEMPTS = 2


class SlackStack:
    """One bot's Slack side served on loopback; ``configure`` rebuilds it with other settings."""

    def __init__(self, sim: DcsSimulator, slack: FakeSlack, state: Path) -> None:
        self.sim, self.slack = sim, slack
        self.state = state
        self.parts: Components | None = None
        self.started_at: datetime | None = None
        self.server: HttpServer | None = None
        self.url = ""
        self.client = httpx.Client(timeout=10)
        self.web = WebClient(token=SLACK_TOKEN, base_url=slack.url)

    def configure(self, **extra: str) -> None:
        """(Re)start the bot with its environment plus ``extra`` variables, built by the
        production wiring; only DCS retries are made fast (and ``started_at`` can be set)."""
        self.stop_server()
        env = bot_env(self.sim, self.slack, self.state, **extra)
        self.settings: Settings = load_settings(env)
        retry = RetryPolicy(attempts=ATTEMPTS, base_delay=0.001, max_delay=0.002)
        self.parts = build(self.settings, retry=retry, sleep=lambda _: None)
        if self.started_at is not None:
            self.parts.started_at = self.started_at
        self.deps: Deps = handler_deps(self.parts)
        bolt = slack_app(self.parts, self.deps)
        self.server = HttpServer(make_wsgi_app(bolt, lambda: (200, {})), host="127.0.0.1", port=0)
        self.url = f"http://127.0.0.1:{self.server.start()}"

    @property
    def store(self) -> StateStore:
        """The state store of the current configuration."""
        assert self.parts is not None
        return self.parts.store

    @property
    def dcs(self) -> DcsClient:
        """The DCS client of the current configuration."""
        assert self.parts is not None
        return self.parts.dcs

    def stop_server(self) -> None:
        """Stop the HTTP server and release the current configuration's store and client."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.parts is not None:
            self.parts.close()
            self.parts = None

    def close(self) -> None:
        """Release everything."""
        self.stop_server()
        self.client.close()

    # -- sending what Slack sends ------------------------------------------------------------

    def post_signed(
        self, body: str, *, timestamp: int | None = None, secret: str = SIGNING_SECRET
    ) -> httpx.Response:
        """POST ``body`` to /slack/events signed with ``secret`` at ``timestamp`` (now)."""
        return post_signed(
            self.client, f"{self.url}/slack/events", body, secret=secret, timestamp=timestamp
        )

    def command_body(
        self, text: str, *, user: str = USER, channel: str = CHANNEL
    ) -> tuple[str, str]:
        """A slash command body as Slack sends it, and its fresh response_url."""
        response_url = self.slack.response_url()
        body = command_body(text, user=user, channel=channel, response_url=response_url)
        return body, response_url

    def command(self, text: str, *, user: str = USER, channel: str = CHANNEL) -> dict[str, Any]:
        """Run ``/dcs-tasks text``: assert the empty 200 ack, return the ephemeral reply."""
        body, response_url = self.command_body(text, user=user, channel=channel)
        response = self.post_signed(body)
        assert response.status_code == 200
        assert response.text == ""
        return self.reply(response_url)

    def action_body(
        self,
        action_id: str,
        value: str,
        *,
        message_ts: str,
        user: str = USER,
        channel: str = CHANNEL,
        ephemeral: bool = False,
    ) -> tuple[str, str]:
        """A block_actions payload for a button on the message ``message_ts``."""
        response_url = self.slack.response_url()
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": "alice", "team_id": "T0FAKETEAM"},
            "api_app_id": "A0DCSTASKS",
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
            "team": {"id": "T0FAKETEAM", "domain": "fake"},
            "channel": {"id": channel, "name": "queries"},
            "message": {"type": "message", "ts": message_ts, "text": "an alert"},
            "response_url": response_url,
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "actions",
                    "value": value,
                    "type": "button",
                    "action_ts": "1700000000.000200",
                }
            ],
        }
        return urlencode({"payload": json.dumps(payload)}), response_url

    def click(self, action_id: str, value: str, *, message_ts: str, **how: Any) -> str:
        """Click a button; assert the empty 200 ack; return the click's response_url."""
        body, response_url = self.action_body(action_id, value, message_ts=message_ts, **how)
        response = self.post_signed(body)
        assert response.status_code == 200
        assert response.text == ""
        return response_url

    def reply(self, response_url: str, *, count: int = 1, wait: float = 15.0) -> dict[str, Any]:
        """The ``count``-th payload posted to ``response_url`` (waits, bounded)."""
        return self.replies(response_url, count=count, wait=wait)[count - 1]

    def replies(
        self, response_url: str, *, count: int = 1, wait: float = 15.0
    ) -> list[dict[str, Any]]:
        """The payloads posted to ``response_url`` once there are ``count`` (waits, bounded)."""

        def posted() -> list[dict[str, Any]]:
            answers = self.slack.responses_to(response_url)
            return answers if len(answers) >= count else []

        return wait_until(posted, f"{count} replies posted to {response_url}", wait)


def reply_text(payload: dict[str, Any]) -> str:
    """Everything a user could read in a reply: its text and all of its blocks, as JSON."""
    return json.dumps(payload, ensure_ascii=False)


@pytest.fixture
def stack(simulator: DcsSimulator, slack: FakeSlack, tmp_path: Path) -> Iterator[SlackStack]:
    """The Slack side with two instances, cache-prod and cache-stage, served on loopback."""
    simulator.add_instance("cache-prod", instance_id=PROD_ID)
    simulator.add_instance("cache-stage", instance_id=STAGE_ID, status="RESTARTING")
    s = SlackStack(simulator, slack, tmp_path / "state.sqlite")
    s.configure()
    yield s
    s.close()
