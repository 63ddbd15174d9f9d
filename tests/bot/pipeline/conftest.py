"""A bot on an injected clock: the simulator and the poller read the same settable time, so a
mute expires or a task gets stuck without any test sleeping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.pipeline.poll import Poller
from bot.testing.fake_slack import FakeSlack
from bot.testing.simulator import DcsSimulator
from tests.conftest import DCS_TOKEN, Harness

PROD = "11111111-1111-4111-8111-111111111111"
STAGE = "22222222-2222-4222-8222-222222222222"


@dataclass
class Clock:
    """A settable UTC clock."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class ClockedBot(Harness):
    """The real pipeline with the poller on ``clock``; ``restart`` keeps the clock."""

    def __init__(self, sim: DcsSimulator, slack: FakeSlack, state: Path, clock: Clock) -> None:
        self.clock = clock
        self._mark = 0
        super().__init__(sim, slack, state)
        self._clocked()

    def forget(self) -> None:
        """From now on, ``slack_calls`` (and posts, replies, sent) ignore what came before."""
        self._mark = len(self.slack.calls)

    def slack_calls(self, method: str | None = None) -> list[Any]:
        """Recorded Slack calls since ``forget``, optionally of one method."""
        calls = [c for c in self.slack.calls[self._mark :] if c.method != "auth.test"]
        return [c for c in calls if method is None or c.method == method]

    def _clocked(self) -> None:
        p = self.parts
        s = self.settings
        p.poller = Poller(
            p.dcs,
            p.store,
            p.watched,
            alert_channel=s.alert_channel,
            lookback=s.lookback,
            digest_threshold=s.digest_threshold,
            retention=s.retention,
            stuck_after=s.stuck_after,
            scope=s.project_id or "",
            clock=self.clock,
        )

    def restart(self) -> None:
        super().restart()
        self._clocked()

    def posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Top-level chat.postMessage calls (no thread replies), optionally to one channel."""
        return [
            c.params
            for c in self.slack_calls("chat.postMessage")
            if not c.params.get("thread_ts") and (channel is None or c.params["channel"] == channel)
        ]

    def replies(self) -> list[dict[str, Any]]:
        """Thread replies sent."""
        return [c.params for c in self.slack_calls("chat.postMessage") if c.params.get("thread_ts")]

    def sent(self) -> str:
        """Everything Slack received, as one string."""
        return json.dumps([c.params for c in self.slack_calls()], default=str)


@pytest.fixture
def clock() -> Clock:
    """Monday 1 December 2025, 09:00 UTC, until advanced."""
    return Clock(datetime(2025, 12, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def clocked(clock: Clock, slack: FakeSlack, tmp_path: Path) -> Iterator[ClockedBot]:
    """A bot watching ``cache-prod`` and ``cache-stage`` on the injected clock, baselined."""
    sim = DcsSimulator(project_id="proj-1", tokens=[DCS_TOKEN], clock=clock)
    sim.start()
    sim.add_instance("cache-prod", instance_id=PROD)
    sim.add_instance("cache-stage", instance_id=STAGE)
    bot = ClockedBot(sim, slack, tmp_path / "state.sqlite", clock)
    bot.cycle()
    yield bot
    bot.close()
    sim.stop()
